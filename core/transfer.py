"""Transfer learning: a trained net's weights as the start of a run on another dataset.

`transfer_net` builds the net for the new data, copies every weight that still fits, and
gives it a fresh head when the number of classes differs. In "head" mode every layer but
the head's linear layer is frozen (`requires_grad` off); in "finetune" mode all of them
train. What cannot fit (other input channels, images too small or of another size for a
net without global pooling) is refused with a message that says why and what to do.

`transfer_race` turns that into the two arms of one run: the transferred net against the
same net from scratch. Both are built from the run's seed (so the new head of the one is
the head of the other, weight for weight) and trained on the same batches in the same
order, so the only difference is where the body starts. The transferred arm carries its
weights as a `core.run.Init`; the Trainer's optimizer holds the trainable parameters only.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from core import checks
from core.data import TensorData
from core.errors import ExplainedError
from core.experiments import compare_loss, final_loss
from core.model import Net, build
from core.run import Arm, Init
from core.spec import NetSpec, SpecError, format_shape

MODES = {"head": "train the new head only", "finetune": "fine-tune every layer"}
HEAD_KEYS = ("head.fc.weight", "head.fc.bias")  # the layer that is new per dataset
PREFIX = "Transfer: "  # a transfer race's run name starts so
TRANSFERRED, SCRATCH = "Transferred", "From scratch"  # its two arms


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


def init_of(net: nn.Module) -> Init:
    """A net's weights (CPU copies) and its frozen parameters, as a run's starting point."""
    state = {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}
    frozen = tuple(name for name, p in net.named_parameters() if not p.requires_grad)
    return Init(state, frozen)


def transfer_race(
    source_net: nn.Module,
    source_spec: NetSpec,
    target_data: TensorData,
    mode: str,
    *,
    seed: int = 0,
) -> tuple[Arm, Arm]:
    """(transferred, from scratch): the arms of one run on `target_data`, for a run whose
    settings have `seed` (the scratch arm is built from it, and so is the new head).

    Raises:
        TransferError: as `transfer_net`.
    """
    net, spec = transfer_net(source_net, source_spec, target_data, mode, seed=seed)
    spec = dataclasses.replace(spec, name=source_spec.name)
    return Arm(TRANSFERRED, spec, init_of(net)), Arm(SCRATCH, spec)


def is_transfer(run_name: str) -> bool:
    return run_name.startswith(PREFIX)


def verdict(name: str, snapshots: dict) -> str | None:
    """What a transfer race shows so far, for the live panel: the transferred net's final
    training loss against the scratch net's, and their last validation accuracies; None
    for another run, or until both nets have trained a step. From the numbers only."""
    if not is_transfer(name):
        return None
    loss = {arm: final_loss(s) for arm, s in snapshots.items() if arm in (TRANSFERRED, SCRATCH)}
    if loss.get(TRANSFERRED) is None or loss.get(SCRATCH) is None:
        return None
    text, sign = compare_loss(TRANSFERRED, loss[TRANSFERRED], SCRATCH, loss[SCRATCH])
    what = {
        -1: "starting from trained weights helped",
        0: "starting from trained weights made little difference here",
        1: "the net trained from scratch is ahead in this run",
    }[sign]
    evals = {arm: snapshots[arm].evals for arm in (TRANSFERRED, SCRATCH)}
    if all(evals.values()):
        a, b = (evals[arm][-1].accuracy for arm in (TRANSFERRED, SCRATCH))
        text += f"; validation accuracy {a:.1%} against {b:.1%}"
    return f"{text}: {what}."
