"""Transfer learning: a trained net's weights as the start of a run on another dataset.

`transfer_net` builds the net for the new data, copies every weight that still fits, and
gives it a fresh head when the number of classes differs. In "head" mode every layer but
the head's linear layer is frozen (`requires_grad` off); in "finetune" mode all of them
train. What cannot fit (other input channels, images too small or of another size for a
net without global pooling) is refused with a message that says why and what to do.

The job manager must still accept the returned net as a run's starting point (and build
its optimizer over the parameters that require gradients only); nothing here trains.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from core import checks
from core.data import TensorData
from core.errors import ExplainedError
from core.model import Net, build
from core.spec import NetSpec, SpecError, format_shape

MODES = {"head": "train the new head only", "finetune": "fine-tune every layer"}
HEAD_KEYS = ("head.fc.weight", "head.fc.bias")  # the layer that is new per dataset


class TransferError(ExplainedError):
    """A trained net that cannot start a run on the chosen data; the message says why."""


def transfer_net(
    source_net: nn.Module,
    source_spec: NetSpec,
    target_data: TensorData,
    mode: str,
    *,
    seed: int = 0,
) -> tuple[Net, NetSpec]:
    """A new net for `target_data` starting from `source_net`'s weights, and its spec.

    Args:
        source_net: the trained net (not changed; its weights are copied).
        source_spec: its spec (as it is now: live skip toggles applied).
        target_data: the dataset of the new run.
        mode: "head" (freeze every layer but the head) or "finetune" (train them all).
        seed: initialises the new head when the number of classes differs.

    Raises:
        TransferError: the mode is unknown, or the net cannot take the new images.
    """
    where = "transfer"
    checks.choice(mode, "the transfer mode", MODES, where=where, error=TransferError)
    spec = _target_spec(source_spec, target_data, where)
    net = build(spec, seed=seed)
    source = {k: v.detach() for k, v in source_net.state_dict().items()}
    target = net.state_dict()
    new_head = spec.num_classes != source_spec.num_classes
    keep = {k for k in target if not (new_head and k in HEAD_KEYS)}
    wrong = sorted(k for k in keep if k not in source or source[k].shape != target[k].shape)
    if wrong:
        raise TransferError(
            f"the trained weights do not fit the network for the new data (first: {wrong[0]})",
            where=where,
            fix="start from a run of this same network",
        )
    with torch.no_grad():
        for k in keep:
            target[k].copy_(source[k].to(target[k].dtype))
    for name, p in net.named_parameters():
        p.requires_grad_(mode == "finetune" or name in HEAD_KEYS)
    return net, spec


def _target_spec(source: NetSpec, data: TensorData, where: str) -> NetSpec:
    """The source spec for the target's image shape and classes, refused where it cannot."""
    src, dst = tuple(source.input_shape), tuple(data.input_shape)
    if len(src) != len(dst):
        raise TransferError(
            f"the network takes {format_shape(src)} inputs, the data are {format_shape(dst)}",
            where=where,
            fix="choose image data for an image network",
        )
    if src[0] != dst[0]:
        raise TransferError(
            f"the network's stem takes {src[0]} colour channel(s), but '{data.name}' has "
            f"{dst[0]}: the stem would have to change, and its trained weights with it",
            where=where,
            fix="choose data with as many channels as the run it starts from "
            f"({'greyscale' if src[0] == 1 else 'colour'} images)",
        )
    spec = dataclasses.replace(
        source, input_shape=dst, num_classes=data.num_classes, name=f"{source.name} (transfer)"
    )
    try:
        plan = spec.validate()
    except SpecError as e:
        raise TransferError(
            f"the network cannot take {format_shape(dst)} images ({e})",
            where=where,
            fix=f"resize the new images to {format_shape(src)}, the size it was trained on",
        ) from None
    if (plan.head.spec.pool is None or len(plan.head.in_shape) != 3) and src != dst:
        raise TransferError(
            f"this network has no global pooling, so it takes only {format_shape(src)} "
            f"images, not {format_shape(dst)}",
            where=where,
            fix=f"resize the new images to {format_shape(src)}",
        )
    return spec


def trainable(net: nn.Module) -> list[str]:
    """The names of the parameters a run would train."""
    return [name for name, p in net.named_parameters() if p.requires_grad]
