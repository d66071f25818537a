"""Captum attribution maps on a frozen copy of a network: seven methods and SmoothGrad.

`attribute(frozen_copy(net), images, request)` -> maps, classes, probabilities, IG's delta.
Never touches weights an optimizer is writing; never imports the UI or prints.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import (
    GradientShap,
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from torch import Tensor, nn
from torchvision.transforms.functional import gaussian_blur

from core.blocks import BasicBlock, BottleneckBlock, ConvBlock

Progress = Callable[[float, str], None]  # (share done in [0, 1], what is happening)


class CancelFlag(Protocol):
    """Anything with `is_set()`, such as a `threading.Event`."""

    def is_set(self) -> bool: ...


class AttributionError(ValueError):
    """A request, model or batch that cannot be attributed; the message says what to change."""


class Cancelled(Exception):
    """The user stopped a long computation; nothing partial is returned."""


@dataclass(frozen=True)
class Method:
    """One attribution method as the page presents it."""

    key: str
    title: str
    explanation: str  # one sentence a teacher can read aloud
    smoothgrad: bool = True  # SmoothGrad can wrap it (a gradient method without its own noise)
    baseline: bool = False  # compares the image with `AttributionRequest.baseline`


METHODS: dict[str, Method] = {
    m.key: m
    for m in (
        Method(
            "saliency",
            "Saliency",
            "How strongly a tiny change of each pixel would move the class score: the size "
            "of the score's gradient (Simonyan et al. 2014).",
        ),
        Method(
            "integrated_gradients",
            "Integrated Gradients",
            "Walks in small steps from a baseline picture to the real image and adds up the "
            "gradients on the way, so the pixel scores sum to how much the class score "
            "changed (Sundararajan et al. 2017).",
            baseline=True,
        ),
        Method(
            "gradient_shap",
            "GradientShap",
            "Integrated Gradients averaged over random baselines, random points on the path "
            "and a little noise: an estimate of each pixel's Shapley value (Lundberg and Lee "
            "2017).",
            smoothgrad=False,
            baseline=True,
        ),
        Method(
            "input_x_gradient",
            "Input × Gradient",
            "The gradient times the pixel itself: large where a strong pixel has a strong "
            "effect (Shrikumar et al. 2016).",
        ),
        Method(
            "occlusion",
            "Occlusion",
            "Covers one square patch at a time with the baseline and records how much the "
            "class score drops: slow, but it needs no gradients (Zeiler and Fergus 2014).",
            smoothgrad=False,
            baseline=True,
        ),
        Method(
            "guided_backprop",
            "Guided Backprop",
            "A gradient in which every ReLU also blocks negative gradients on the way back: "
            "sharp maps which, Adebayo et al. 2018 found, barely change when the top layers' "
            "weights are replaced by random ones.",
        ),
        Method(
            "gradcam",
            "GradCAM",
            "Weights a block's feature maps by how much the class score depends on each, "
            "keeps the positive part and stretches it to the image: coarse but specific to "
            "the class (Selvaraju et al. 2017).",
        ),
    )
}

SMOOTHGRAD = (
    "SmoothGrad averages the map over copies of the image with random noise added, which "
    "wipes out speckle that no single pixel deserves (Smilkov et al. 2017)."
)
TARGETS = {
    "predicted": "the class the model predicts",
    "true": "the image's true class",
    "class": "a class you choose",
}
BASELINES = {
    "black": "a black image (every pixel zero)",
    "blurred": "the same image, heavily blurred: keeps the colours, removes the shapes",
    "noise": "uniform noise over the images' range of values",
}

# Caps so one request cannot tie up the server; the page's sliders stay well inside them.
MAX_STEPS = 1000
MAX_SAMPLES = 500
MAX_BATCH = 4096
_BLUR_SIGMA = 1 / 8  # of the image side: a 32 px image is blurred with sigma 4 px
_CAM_BLOCKS = (ConvBlock, BasicBlock, BottleneckBlock)  # blocks whose output is an image


def _check_int(name: str, value, lo: int, hi: int, meaning: str, hint: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise AttributionError(
            f"{name} is {meaning} and must be a whole number from {lo} to {hi}, "
            f"got {value!r}; {hint}"
        )


def _check_choice(name: str, value, choices: dict) -> None:
    if value not in choices:
        raise AttributionError(
            f"{name} {value!r} is not available; choose one of: {', '.join(choices)}"
        )


@dataclass(frozen=True, kw_only=True)
class AttributionRequest:
    """What to attribute and how. Edit with `dataclasses.replace`; checked on creation.

    `internal_batch_size` caps the images (or path steps, noisy copies, occluded copies)
    in one forward and backward pass, so memory stays flat however many steps or samples
    are asked for.
    """

    method: str = "saliency"
    target: str = "predicted"  # a key of TARGETS
    target_class: int | None = None  # used when target == "class"
    baseline: str = "black"  # a key of BASELINES: Integrated Gradients, GradientShap, Occlusion
    n_steps: int = 50  # Integrated Gradients: points on the path (Gauss-Legendre)
    gradshap_samples: int = 20  # GradientShap: random (baseline, point, noise) draws per image
    smoothgrad_samples: int = 0  # noisy copies per image; 0 switches SmoothGrad off
    noise_level: float = 0.15  # noise std as a share of the value range (Smilkov: 10-20%)
    occlusion_window: int = 4  # side of the square patch, in pixels
    occlusion_stride: int = 2
    gradcam_block: int | None = None  # index in NetSpec.blocks; None: the last conv block
    internal_batch_size: int = 64
    seed: int = 0  # noise and random baselines are drawn from this seed

    def __post_init__(self) -> None:
        for name, choices in (("method", METHODS), ("target", TARGETS), ("baseline", BASELINES)):
            _check_choice(name, getattr(self, name), choices)
        ibs, window = self.internal_batch_size, self.occlusion_window
        _check_int("internal_batch_size", ibs, 1, MAX_BATCH, "the most images in a pass", "try 64")
        _check_int("occlusion_window", window, 1, 512, "the patch side in pixels", "try 4")
        checks = [  # (setting, lowest, highest, what it is, what to try)
            ("n_steps", 1, MAX_STEPS, "the number of steps on the path", "50 is a good start"),
            (
                "gradshap_samples",
                1,
                min(MAX_SAMPLES, ibs) if self.method == "gradient_shap" else MAX_SAMPLES,
                "the random draws per image, made in one pass (so at most internal_batch_size)",
                "20 is a good start",
            ),
            (
                "smoothgrad_samples",
                0,
                MAX_SAMPLES,
                "the number of noisy copies per image",
                "0 switches SmoothGrad off; 20 to 50 is usual",
            ),
            (
                "occlusion_stride",
                1,
                window,
                "the patch's step in pixels, at most the window so that every pixel gets covered",
                "try half the window",
            ),
            ("seed", 0, 2**63 - 1, "the random seed", "0 is fine"),
        ]
        if self.target == "class":
            checks.append(("target_class", 0, 10**6, "the class to explain", "0 is the first"))
        if self.gradcam_block is not None:
            checks.append(("gradcam_block", 0, 10**6, "a block index", "or None for the last"))
        for name, lo, hi, meaning, hint in checks:
            _check_int(name, getattr(self, name), lo, hi, meaning, hint)
        if self.smoothgrad_samples and not METHODS[self.method].smoothgrad:
            why = {
                "occlusion": "Occlusion uses no gradients",
                "gradient_shap": "GradientShap already averages over noisy copies",
            }[self.method]
            raise AttributionError(
                f"SmoothGrad averages gradient maps over noisy copies, but {why}; set "
                "smoothgrad_samples to 0 or choose another method"
            )
        noise = self.noise_level
        if not isinstance(noise, (int, float)) or isinstance(noise, bool) or not 0 < noise <= 1:
            raise AttributionError(
                f"noise_level is the noise's spread as a share of the images' range and must "
                f"be above 0 and at most 1, got {noise!r}; 0.15 is the usual choice"
            )

    @property
    def label(self) -> str:
        """'Integrated Gradients (50 steps, black baseline) + SmoothGrad (20 samples)'."""
        m = self.method
        detail = {
            "integrated_gradients": f"{self.n_steps} steps, {self.baseline} baseline",
            "gradient_shap": f"{self.gradshap_samples} samples, {self.baseline} baseline",
            "occlusion": f"{self.occlusion_window}x{self.occlusion_window} window, "
            f"stride {self.occlusion_stride}, {self.baseline} patch",
            "gradcam": "last conv block"
            if self.gradcam_block is None
            else f"block {self.gradcam_block}",
        }.get(m)
        text = METHODS[m].title + (f" ({detail})" if detail else "")
        if self.smoothgrad_samples:
            text += f" + SmoothGrad ({self.smoothgrad_samples} samples)"
        return text


@dataclass(frozen=True, kw_only=True, eq=False)
class AttributionResult:
    """Maps and what they explain; every tensor is on the CPU."""

    request: AttributionRequest
    maps: Tensor  # (N, H, W): channels summed (signed); GradCAM upsampled to the image
    raw: Tensor  # (N, C, H, W); GradCAM: (N, 1, h, w) at the block's own resolution
    targets: Tensor  # (N,) int64: the class each map explains
    probabilities: Tensor  # (N, classes): softmax of the model's output
    delta: Tensor | None  # (N,) Integrated Gradients: sum(map) - (f(x) - f(baseline))
    gradcam_block: int | None  # the block GradCAM looked at
    seconds_per_image: float


# --- the frozen copy ---------------------------------------------------------------------


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
    twin = copy.deepcopy(model).eval()
    twin.requires_grad_(False)
    for p in twin.parameters():
        p.grad = None  # gradients left by training: memory, and nothing to explain
    if mean is None and std is None:
        return twin
    channels = getattr(getattr(twin, "spec", None), "input_shape", (None,))[0]
    if mean is None or std is None or len(mean) != len(std) or min(std) <= 0:
        raise AttributionError(
            "normalisation needs both mean and std, one value per channel, std above 0; "
            "pass the dataset's mean and std together, or neither"
        )
    if channels is not None and len(mean) != channels:
        raise AttributionError(
            f"the model takes {channels}-channel images but mean and std have {len(mean)} "
            "values; pass the statistics of the dataset this run trained on"
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
            "so that training cannot change the weights half-way through a map; pass "
            "frozen_copy(model) instead"
        )


# --- inputs ------------------------------------------------------------------------------


def check_images(model: nn.Module, images: Tensor) -> Tensor:
    """The batch on the model's device, as float; clear errors for the usual mistakes."""
    if not isinstance(images, Tensor) or images.dim() != 4 or len(images) == 0:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise AttributionError(
            f"attribution needs a batch of images shaped (N, C, H, W), got {shape}; "
            "for one image use images.unsqueeze(0)"
        )
    expected = getattr(getattr(unwrap(model), "spec", None), "input_shape", None)
    if expected is not None and tuple(images.shape[1:]) != tuple(expected):
        got, want = "x".join(map(str, images.shape[1:])), "x".join(map(str, expected))
        raise AttributionError(
            f"the model was built for {want} images but got {got}; use images from its dataset"
        )
    p = next(model.parameters(), None)
    device, dtype = (p.device, p.dtype) if p is not None else (images.device, torch.float32)
    return images.detach().to(device=device, dtype=dtype)


def baseline_images(images: Tensor, kind: str, *, seed: int = 0) -> Tensor:
    """The reference picture(s) Integrated Gradients, GradientShap and Occlusion compare with.

    black: zeros. blurred: a Gaussian blur with sigma = side / 8 (Sturmfels et al. 2020,
    "Visualizing the Impact of Feature Attribution Baselines"). noise: uniform between the
    batch's lowest and highest value, drawn from `seed` only.
    """
    _check_choice("baseline", kind, BASELINES)
    if kind == "black":
        return torch.zeros_like(images)
    if kind == "blurred":
        side = min(images.shape[-2:])
        sigma = max(1.0, _BLUR_SIGMA * side)
        half = min(math.ceil(3 * sigma), side - 1)  # +-3 sigma; reflect padding < the side
        if half < 1:
            return images.clone()
        return gaussian_blur(images, [2 * half + 1] * 2, [sigma, sigma])
    gen = torch.Generator().manual_seed(seed)
    lo, hi = images.min(), images.max()
    noise = torch.rand(images.shape, generator=gen, dtype=images.dtype).to(images.device)
    return lo + (hi - lo) * noise


def probabilities(model: nn.Module, x: Tensor, batch: int) -> Tensor:
    """Softmax of the model's output, `batch` images per pass. (N, C, H, W) -> (N, classes)."""
    with torch.no_grad():
        logits = torch.cat([model(x[i : i + batch]) for i in range(0, len(x), batch)])
    if logits.dim() != 2:
        raise AttributionError(
            f"the model must return one score per class, shaped (N, classes), but returned "
            f"{tuple(logits.shape)}; attribution explains classifiers"
        )
    return logits.float().softmax(1)


def choose_targets(
    request: AttributionRequest, probs: Tensor, labels: Tensor | None = None
) -> Tensor:
    """The class each map explains: predicted, true (from `labels`) or one chosen class."""
    n, classes = probs.shape
    if request.target == "predicted":
        return probs.argmax(1)
    if request.target == "class":
        if request.target_class >= classes:
            raise AttributionError(
                f"class {request.target_class} does not exist: this model has {classes} "
                f"classes, numbered 0 to {classes - 1}"
            )
        return torch.full((n,), request.target_class, dtype=torch.int64, device=probs.device)
    if labels is None:
        raise AttributionError(
            "target 'true' explains each image's true class, so it needs the labels; pass "
            "labels=..., or choose target 'predicted'"
        )
    labels = torch.as_tensor(labels).to(probs.device, torch.int64).reshape(-1)
    if len(labels) != n or labels.min() < 0 or labels.max() >= classes:
        raise AttributionError(
            f"labels must hold one class from 0 to {classes - 1} per image ({n} images), "
            f"got {len(labels)} labels from {labels.min().item()} to {labels.max().item()}"
        )
    return labels


def gradcam_layer(model: nn.Module, index: int | None) -> tuple[int, nn.Module]:
    """(index, block) for GradCAM: a conv or residual block, the last one when index is None."""
    net = unwrap(model)
    blocks = getattr(net, "blocks", None)
    if not isinstance(blocks, nn.Sequential):
        raise AttributionError(
            "GradCAM looks inside a block, so it needs a network built in ResNet Explorer; "
            "choose another method for this model"
        )
    allowed = [i for i, b in enumerate(blocks) if isinstance(b, _CAM_BLOCKS)]
    if not allowed:
        raise AttributionError(
            "GradCAM needs a convolutional or residual block, and this network has none; "
            "choose another method"
        )
    if index is None:
        return allowed[-1], blocks[allowed[-1]]
    if index >= len(blocks):
        raise AttributionError(
            f"block {index} does not exist: this network has blocks 0 to {len(blocks) - 1}"
        )
    if index not in allowed:
        spec = getattr(net, "spec", None)
        kind = spec.blocks[index].kind if spec is not None else type(blocks[index]).__name__
        raise AttributionError(
            f"GradCAM needs feature maps, but block {index} is a {kind} block; choose a "
            f"convolutional or residual block: {', '.join(map(str, allowed))}"
        )
    return index, blocks[index]


# --- the computation ---------------------------------------------------------------------


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Captum's NoiseTunnel and GradientShap draw from torch's and numpy's global generators:
    seed both and restore them afterwards, so a map is reproducible. Another thread drawing
    from them meanwhile (dropout) gets the seeded stream: harmless."""
    devices = [] if device.type == "cpu" else [device.index or 0]
    kind = "cuda" if device.type == "cpu" else device.type
    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=devices, device_type=kind):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)


def _check_cancel(cancel: CancelFlag | None, done: int, total: int, what: str) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"{what} stopped at your request after {done} of {total} steps")


def _rows_per_image(request: AttributionRequest) -> int:
    """Images in one pass for each image attributed (path steps, random draws)."""
    return {
        "integrated_gradients": request.n_steps,
        "gradient_shap": request.gradshap_samples,
    }.get(request.method, 1)


def _captum(model: nn.Module, request: AttributionRequest, layer: nn.Module | None):
    classes = {
        "saliency": Saliency,
        "integrated_gradients": IntegratedGradients,
        "gradient_shap": GradientShap,
        "input_x_gradient": InputXGradient,
        "occlusion": Occlusion,
        "guided_backprop": GuidedBackprop,
    }
    if request.method == "gradcam":
        return LayerGradCam(model, layer)
    return classes[request.method](model)


def _kwargs(request: AttributionRequest, xb: Tensor, bb: Tensor, noise: float, copies: int):
    """Captum's arguments for one call on `xb` (each image possibly expanded `copies` times)."""
    ibs = request.internal_batch_size
    m = request.method
    if m == "saliency":
        return {"abs": True}
    if m == "integrated_gradients":
        n = len(xb) * copies  # SmoothGrad hands IG the noisy copies as one batch
        return {"baselines": bb, "n_steps": request.n_steps, "internal_batch_size": max(ibs, n)}
    if m == "gradient_shap":
        return {"baselines": bb, "n_samples": request.gradshap_samples, "stdevs": noise}
    if m == "occlusion":
        c, w, s = xb.shape[1], request.occlusion_window, request.occlusion_stride
        return {
            "baselines": bb,
            "sliding_window_shapes": (c, w, w),
            "strides": (c, s, s),
            "perturbations_per_eval": max(1, ibs // len(xb)),
        }
    if m == "gradcam":
        return {"relu_attributions": True}
    return {}


def _one_pass(method, request, xb: Tensor, tb: Tensor, bb: Tensor | None, noise: float):
    """(attributions, IG's convergence delta or None) for one batch of images."""
    kw = _kwargs(request, xb, bb, noise, 1)
    if request.method == "integrated_gradients":
        attr, delta = method.attribute(xb, target=tb, return_convergence_delta=True, **kw)
        return attr.detach(), delta.detach()
    return method.attribute(xb, target=tb, **kw).detach(), None


def _noisy_pass(method, request, xb: Tensor, tb: Tensor, bb, noise: float, s: int) -> Tensor:
    """SmoothGrad: the mean map over `s` noisy copies of each image, in one pass."""
    return (
        NoiseTunnel(method)
        .attribute(
            xb,
            nt_type="smoothgrad",
            nt_samples=s,
            nt_samples_batch_size=s,
            stdevs=noise,
            target=tb,
            **_kwargs(request, xb, bb, noise, s),
        )
        .detach()
    )


def attribute(
    model: nn.Module,
    images: Tensor,
    request: AttributionRequest,
    *,
    labels: Tensor | None = None,
    targets: Tensor | None = None,
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
) -> AttributionResult:
    """Attribute each image's class score to its pixels with one Captum method.

    Args:
        model: a `frozen_copy` of the network (eval mode, weights not trainable).
        images: (N, C, H, W), in the value range the model was trained on.
        request: method and settings.
        labels: (N,) true classes, needed for target 'true'.
        targets: (N,) classes to explain, overriding `request.target` (the sanity check
            keeps the original model's classes while it randomises the weights).
        progress: called with (share done, message) after every pass.
        cancel: checked before every pass; when set, `Cancelled` is raised.

    Raises:
        AttributionError: the model is not frozen, or the request does not fit the model.
        Cancelled: `cancel` was set.
    """
    start = time.perf_counter()
    check_frozen(model)
    x = check_images(model, images)
    n = len(x)
    if request.method == "occlusion" and request.occlusion_window > min(x.shape[-2:]):
        raise AttributionError(
            f"the occlusion window ({request.occlusion_window} pixels) is larger than the "
            f"{x.shape[-2]}x{x.shape[-1]} images; choose at most {min(x.shape[-2:])}"
        )
    block, layer = (
        gradcam_layer(model, request.gradcam_block) if request.method == "gradcam" else (None, None)
    )
    probs = probabilities(model, x, request.internal_batch_size)
    if targets is None:
        targets = choose_targets(request, probs, labels)
    targets = torch.as_tensor(targets).to(x.device, torch.int64).reshape(-1)
    if len(targets) != n:
        raise AttributionError(f"need one target class per image ({n}), got {len(targets)}")

    uses_baseline = METHODS[request.method].baseline
    base = baseline_images(x, request.baseline, seed=request.seed) if uses_baseline else None
    noise = request.noise_level * ((x.max() - x.min()).item() or 1.0)  # one host sync
    method = _captum(model, request, layer)
    # Batching: at most internal_batch_size rows (images x path steps x noisy copies) in
    # one pass, so memory does not grow with n_steps or the number of samples.
    samples, per_image = request.smoothgrad_samples, _rows_per_image(request)
    chunk = max(1, min(n, request.internal_batch_size // per_image))
    copies = max(1, min(samples, request.internal_batch_size // (chunk * per_image)))
    splits = [min(copies, samples - k) for k in range(0, samples, copies)] or [0]
    total, done, parts, deltas = n * max(1, samples), 0, {}, []
    what = "noisy copies" if samples else "images"
    with _seeded(request.seed, x.device):
        for lo in range(0, n, chunk):
            xb = x[lo : lo + chunk].detach().requires_grad_()  # a leaf, as Captum expects
            tb = targets[lo : lo + chunk]
            bb = base[lo : lo + chunk] if base is not None else None
            for s in splits:  # s noisy copies of each image; 0: the images themselves
                _check_cancel(cancel, done, total, request.label)
                if s:
                    attr = _noisy_pass(method, request, xb, tb, bb, noise, s) * (s / samples)
                else:
                    attr, delta = _one_pass(method, request, xb, tb, bb, noise)
                    deltas += [delta] if delta is not None else []
                parts[lo] = attr if lo not in parts else parts[lo] + attr
                done += len(xb) * max(1, s)
                _report(progress, done / total, f"{request.label}: {done} of {total} {what}")
    raw = torch.cat([parts[lo] for lo in sorted(parts)])
    if request.method == "gradcam":  # (N, 1, h, w) -> (N, H, W), bilinear as in the paper
        maps = F.interpolate(raw, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    else:
        maps = raw.sum(1)  # (N, C, H, W) -> (N, H, W): signed, so IG's sum is kept
    result = AttributionResult(
        request=request,
        maps=maps.float().cpu(),  # the .cpu() copies are the host sync point
        raw=raw.float().cpu(),
        targets=targets.cpu(),
        probabilities=probs.cpu(),
        delta=torch.cat(deltas).float().cpu() if deltas else None,
        gradcam_block=block,
        seconds_per_image=(time.perf_counter() - start) / n,
    )
    return result


def _report(progress: Progress | None, share: float, message: str) -> None:
    if progress is not None:
        progress(min(1.0, share), message)


def scaled_progress(progress: Progress | None, lo: float, hi: float) -> Progress | None:
    """A callback that maps an inner computation's [0, 1] onto [lo, hi] of the outer one."""
    if progress is None:
        return None
    return lambda share, message: progress(lo + (hi - lo) * share, message)
