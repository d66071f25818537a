"""What the experiments inside a trained net share (lesion study, loss landscape, errors
per class): its inputs prepared as the trainer prepares them, batched evaluation in eval
mode with every module's mode restored, and their one error family.

Never changes a weight, never imports the UI. Progress callbacks and the cancel flag are
the attribution page's (`core.attribution`), so a page handles every long job alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.attribution import CancelFlag, Cancelled, Progress, scaled_progress
from core.data import TensorData
from core.errors import ExplainedError
from core.spec import format_shape

__all__ = [
    "EVAL_BATCH",
    "CancelFlag",
    "Cancelled",
    "InsideError",
    "Progress",
    "check_cancel",
    "check_fits",
    "eval_mode",
    "evaluate",
    "logits",
    "model_inputs",
    "net_device",
    "report",
    "scaled_progress",
    "train_subset",
]

# Images per forward pass: ResNet-20 at 32x32 needs about 2.5 MB of activations per image
# in eval mode, so 500 stay near 1 GB at the peak; larger batches are no faster on a CPU.
EVAL_BATCH = 500


class InsideError(ExplainedError):
    """An experiment on a trained net that cannot run as asked; the message says why."""


def net_device(net: nn.Module) -> torch.device:
    p = next(net.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _channels_last(net: nn.Module) -> bool:
    """Whether the trainer left the net in channels_last (its inputs should match)."""
    w = next((p for p in net.parameters() if p.dim() == 4), None)
    return (
        w is not None
        and not w.is_contiguous()
        and w.is_contiguous(memory_format=torch.channels_last)
    )


def check_fits(net: nn.Module, data: TensorData, where: str) -> None:
    """The dataset must be the kind the net was trained on: same image shape and classes."""
    spec = getattr(net, "spec", None)
    if spec is None:
        return
    if tuple(data.input_shape) != tuple(spec.input_shape):
        raise InsideError(
            f"the images of '{data.name}' are {format_shape(tuple(data.input_shape))}, but "
            f"the network takes {format_shape(tuple(spec.input_shape))}",
            where=where,
            fix="choose the dataset (and image size) the run was trained on",
        )
    if data.num_classes != spec.num_classes:
        raise InsideError(
            f"'{data.name}' has {data.num_classes} classes, but the network tells "
            f"{spec.num_classes} apart",
            where=where,
            fix="choose the dataset the run was trained on",
        )


def model_inputs(
    net: nn.Module, data: TensorData, split: str, indices: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Images of `split` ("train" or "val"), normalised with the training statistics as
    the trainer does, on the net's device and in its memory layout; and their labels.

    `indices` picks images (positions in the split); None takes them all.
    """
    x, y = (data.x_train, data.y_train) if split == "train" else (data.x_val, data.y_val)
    if indices is not None:
        indices = indices.to(x.device)
        x, y = x[indices], y[indices]
    device = net_device(net)
    x, y = x.to(device), y.to(device)
    mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)
    x = (x - mean) / std
    if _channels_last(net):
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y


def train_subset(data: TensorData, images: int, seed: int) -> Tensor:
    """A fixed random subset of the training images (sorted positions): the same for every
    call with one seed, and for both twins of a comparison."""
    n = len(data.y_train)
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=gen)[: min(images, n)].sort().values


@contextmanager
def eval_mode(net: nn.Module) -> Iterator[nn.Module]:
    """Eval mode (BatchNorm on its running statistics, dropout off) and no gradients for
    the `with`; afterwards every module is back in the mode it was in, one by one."""
    modes = [(m, m.training) for m in net.modules()]
    net.eval()
    try:
        with torch.no_grad():
            yield net
    finally:
        for m, training in modes:
            m.training = training


def check_cancel(cancel: CancelFlag | None, what: str, done: int, total: int) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"{what} stopped at your request after {done} of {total} steps")


def report(progress: Progress | None, share: float, message: str) -> None:
    if progress is not None:
        progress(min(1.0, share), message)


def logits(
    net: nn.Module,
    x: Tensor,
    *,
    batch: int = EVAL_BATCH,
    cancel: CancelFlag | None = None,
    progress: Progress | None = None,
    what: str = "evaluation",
) -> Tensor:
    """The net's class scores for `x`, in batches, as float32; call it in `eval_mode`."""
    out, total = [], max(1, -(-len(x) // batch))
    for k, lo in enumerate(range(0, len(x), batch)):
        check_cancel(cancel, what, k, total)
        out.append(net(x[lo : lo + batch]).float())  # (B, C, H, W) -> (B, classes)
        report(progress, (k + 1) / total, f"{what}: {min(lo + batch, len(x)):,} images")
    return torch.cat(out) if out else torch.empty(0, 0, device=x.device)


def evaluate(
    net: nn.Module, x: Tensor, y: Tensor, *, batch: int = EVAL_BATCH
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of the net on (x, y); call it in `eval_mode`."""
    scores = logits(net, x, batch=batch)
    loss = F.cross_entropy(scores, y)
    correct = (scores.argmax(1) == y).float().mean()
    loss_value, accuracy = torch.stack([loss, correct]).tolist()  # the one host sync
    return loss_value, accuracy
