"""The network as attribution sees it: a frozen copy (eval mode, no trainable weight),
behind the input normalisation it trained with, and the blocks GradCAM may look into.

Never touches the weights an optimizer is writing: every function here works on copies.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from core.attribution.request import AttributionError


class Normalised(nn.Module):
    """The network behind the input normalisation it was trained with, so that maps live in
    pixel space: a black baseline is black and Input x Gradient multiplies real pixels."""

    def __init__(self, net: nn.Module, mean, std):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net((x - self.mean) / self.std)  # pixels -> what the net was trained on


def unwrap(model: nn.Module) -> nn.Module:
    """The network itself, behind its normalisation if it has one."""
    return model.net if isinstance(model, Normalised) else model


def frozen_copy(
    model: nn.Module,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> nn.Module:
    """A deep copy in eval mode whose weights take no gradients.

    Copy while the run is paused or finished (or under the trainer's lock): copying reads
    every weight, and an optimizer step in the middle would mix two versions. Captum's
    hooks (Guided Backprop) and the sanity check's randomisation then touch only the copy;
    run one computation at a time on a copy, since Guided Backprop hooks its ReLUs.

    Args:
        mean, std: the per-channel normalisation the run trained with (`TensorData.mean`
            and `.std`); given, the copy takes images in pixel values and normalises them
            itself, so baselines and maps mean what the page says they mean.
    """
    return freeze(copy.deepcopy(model), mean=mean, std=std)


def freeze(
    model: nn.Module,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> nn.Module:
    """`frozen_copy` without the copy: for a network that is already a private copy (the
    job manager's `copy_model`), so its weights are not copied twice. Changes `model`."""
    twin = model.eval()
    twin.requires_grad_(False)
    for p in twin.parameters():
        p.grad = None  # gradients left by training: memory, and nothing to explain
    if mean is None and std is None:
        return twin
    channels = getattr(getattr(twin, "spec", None), "input_shape", (None,))[0]
    if mean is None or std is None or len(mean) != len(std) or min(std) <= 0:
        raise AttributionError(
            "normalisation needs both mean and std, one value per channel, std above 0",
            fix="pass the dataset's mean and std together, or neither",
        )
    if channels is not None and len(mean) != channels:
        raise AttributionError(
            f"the model takes {channels}-channel images but mean and std have {len(mean)} values",
            fix="pass the statistics of the dataset this run trained on",
        )
    p = next(twin.parameters(), None)
    return Normalised(twin, mean, std).to(p.device if p is not None else "cpu").eval()


def is_frozen(model: nn.Module) -> bool:
    """Eval mode everywhere (BatchNorm uses running stats, dropout is off), no trainable weight."""
    return not any(m.training for m in model.modules()) and not any(
        p.requires_grad for p in model.parameters()
    )


def check_frozen(model: nn.Module) -> None:
    if not is_frozen(model):
        raise AttributionError(
            "attribution needs a frozen copy of the model (eval mode, weights not trainable), "
            "so that training cannot change the weights half-way through a map",
            fix="pass frozen_copy(model) instead",
        )


def check_images(model: nn.Module, images: Tensor) -> Tensor:
    """The batch on the model's device, as float; clear errors for the usual mistakes."""
    if not isinstance(images, Tensor) or images.dim() != 4 or len(images) == 0:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise AttributionError(
            f"attribution needs a batch of images shaped (N, C, H, W), got {shape}",
            fix="for one image use images.unsqueeze(0)",
        )
    expected = getattr(getattr(unwrap(model), "spec", None), "input_shape", None)
    if expected is not None and tuple(images.shape[1:]) != tuple(expected):
        got, want = "x".join(map(str, images.shape[1:])), "x".join(map(str, expected))
        raise AttributionError(
            f"the model was built for {want} images but got {got}",
            fix="use images from its dataset",
        )
    p = next(model.parameters(), None)
    device, dtype = (p.device, p.dtype) if p is not None else (images.device, torch.float32)
    return images.detach().to(device=device, dtype=dtype)


def probabilities(model: nn.Module, x: Tensor, batch: int) -> Tensor:
    """Softmax of the model's output, `batch` images per pass. (N, C, H, W) -> (N, classes)."""
    with torch.no_grad():
        logits = torch.cat([model(x[i : i + batch]) for i in range(0, len(x), batch)])
    if logits.dim() != 2:
        raise AttributionError(
            f"the model must return one score per class, shaped (N, classes), but returned "
            f"{tuple(logits.shape)}",
            fix="attribution explains classifiers",
        )
    return logits.float().softmax(1)


# --- GradCAM's blocks --------------------------------------------------------------------


def feature_map_blocks(spec) -> list[int]:
    """Indices of the blocks whose output is a stack of feature maps (C, H, W), as the block
    kinds themselves say (`BlockSpec.feature_map`): the blocks GradCAM can look into."""
    return [i for i, block in enumerate(spec.blocks) if type(block).feature_map]


def shared_feature_map_blocks(specs: Sequence) -> list[int]:
    """The feature-map blocks that every one of `specs` has at the same index (twins)."""
    sets = [set(feature_map_blocks(s)) for s in specs]
    return sorted(set.intersection(*sets)) if sets else []


def gradcam_layer(model: nn.Module, index: int | None) -> tuple[int, nn.Module]:
    """(index, block) for GradCAM: a conv or residual block, the last one when index is None.

    Which blocks qualify is read from the network's spec (`net.spec`, kept by every
    network built here, presets in torchvision's layout included).
    """
    net = unwrap(model)
    blocks, spec = getattr(net, "blocks", None), getattr(net, "spec", None)
    if not isinstance(blocks, nn.Sequential) or spec is None or len(spec.blocks) != len(blocks):
        raise AttributionError(
            "GradCAM looks inside a block, so it needs a network built in ResNet Explorer",
            fix="choose another method for this model",
        )
    allowed = feature_map_blocks(spec)
    if not allowed:
        raise AttributionError(
            "GradCAM needs a convolutional or residual block, and this network has none",
            fix="choose another method",
        )
    if index is None:
        return allowed[-1], blocks[allowed[-1]]
    if index >= len(blocks):
        raise AttributionError(
            f"block {index} does not exist: this network has blocks 0 to {len(blocks) - 1}"
        )
    if index not in allowed:
        raise AttributionError(
            f"GradCAM needs feature maps, but block {index} is a {spec.blocks[index].kind} block",
            fix=f"choose a convolutional or residual block: {', '.join(map(str, allowed))}",
        )
    return index, blocks[index]
