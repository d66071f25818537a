"""Lesion study (Veit, Wilber and Belongie 2016, "Residual networks behave like ensembles
of relatively shallow networks"): remove blocks of a trained net at test time and measure
validation accuracy, one block at a time and k random blocks at once.

A residual block loses its branch and keeps its shortcut: its output becomes
`shortcut(x)`. A plain block can only go where its input and output have one shape: its
whole path becomes the identity. Nothing here changes a weight or leaves the net changed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from core import checks
from core.blocks import DenseResidualBlock, ResidualBlock
from core.data import TensorData
from core.inside import (
    EVAL_BATCH,
    CancelFlag,
    InsideError,
    Progress,
    check_cancel,
    check_fits,
    eval_mode,
    model_inputs,
    report,
)
from core.limits import INSIDE_LIMITS
from core.model import Net
from core.spec import format_shape

SHORTCUT = "shortcut"  # a residual block without its branch: output = shortcut(x)
IDENTITY = "identity"  # a plain block whose input and output have one shape: output = x
CAPS = INSIDE_LIMITS  # defaults and caps, each with its reason (core.limits)
DEFAULT_IMAGES, MAX_IMAGES = CAPS.lesion_images, CAPS.max_lesion_images
DEFAULT_DRAWS, MAX_DRAWS = CAPS.lesion_draws, CAPS.max_lesion_draws
# Block inputs kept per chunk of images, so each lesion runs only the blocks after it:
# all single lesions then cost about 1 + n/2 forward passes instead of n + 1.
CACHE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Removal:
    """A block that can be removed, and what stands in for it (SHORTCUT or IDENTITY)."""

    block: int
    how: str


@dataclass(frozen=True)
class Kept:
    """A block that cannot be removed, with the reason in words."""

    block: int
    reason: str


@dataclass(frozen=True)
class LesionStudy:
    """Validation accuracy of a net with blocks removed.

    `single[j]` is the accuracy with `removable[j].block` removed; `k_draws[k - 1]` holds
    the accuracy of every draw of k removed blocks (all sets when there are at most
    `draws` of them, so k = n has one entry).
    """

    name: str
    images: int
    baseline: float  # every block in place
    removable: tuple[Removal, ...]
    kept: tuple[Kept, ...]
    single: tuple[float, ...]
    k_draws: tuple[tuple[float, ...], ...]

    @property
    def ks(self) -> tuple[int, ...]:
        return tuple(range(len(self.k_draws) + 1))

    @property
    def k_mean(self) -> tuple[float, ...]:
        return (self.baseline, *(sum(d) / len(d) for d in self.k_draws))

    @property
    def k_std(self) -> tuple[float, ...]:
        """Spread over the draws (population standard deviation; 0 for a single set)."""
        out = [0.0]
        for d in self.k_draws:
            m = sum(d) / len(d)
            out.append(math.sqrt(sum((a - m) ** 2 for a in d) / len(d)))
        return tuple(out)


def removed_output(block: nn.Module, x: Tensor) -> Tensor:
    """What a removed block passes on: its shortcut (residual) or its input (plain)."""
    if getattr(block, "skip", False):
        if isinstance(block, DenseResidualBlock):  # its skip starts after the first layer
            x = block.drop(block.act1(block.bn1(block.fc1(x))))
        return block.shortcut(x)
    return x


def removable(net: Net) -> tuple[tuple[Removal, ...], tuple[Kept, ...]]:
    """Which residual-kind blocks (basic, bottleneck, dense residual) can be removed now.

    Skips are read as they are (a live toggle counts). Other blocks (conv, pool, dense)
    have no twin to compare and are left alone.
    """
    plan = net.spec.validate()
    out, kept = [], []
    for i, block in enumerate(net.blocks):
        if not isinstance(block, ResidualBlock):
            continue
        layer = plan.blocks[i]
        if block.skip:
            out.append(Removal(i, SHORTCUT))
        elif tuple(layer.in_shape) == tuple(layer.out_shape):
            out.append(Removal(i, IDENTITY))
        else:
            kept.append(
                Kept(
                    i,
                    f"it changes the shape from {format_shape(layer.in_shape)} to "
                    f"{format_shape(layer.out_shape)} and its skip is off, so nothing can "
                    "stand in for it",
                )
            )
    return tuple(out), tuple(kept)


@contextmanager
def lesioned(net: Net, blocks: Iterable[int]) -> Iterator[Net]:
    """The net with `blocks` removed for the duration of the `with` (each one's forward
    returns `removed_output`); afterwards every block computes as before, even on error.
    No weight, buffer or flag changes."""
    blocks = sorted(set(blocks))
    allowed = {r.block for r in removable(net)[0]}
    for i in blocks:
        if i not in allowed:
            raise InsideError(
                "cannot be removed: it is not a residual block, or it changes shape and "
                "has its skip off",
                where=f"block {i}",
                fix=f"choose one of the blocks {sorted(allowed)}",
            )
    patched = []
    try:
        for i in blocks:
            block = net.blocks[i]
            block.forward = lambda x, b=block: removed_output(b, x)  # shadows the class's
            patched.append(block)
        yield net
    finally:
        for block in patched:
            del block.forward


def _check_settings(images: int, draws: int, seed: int, where: str) -> None:
    checks.whole(images, "the number of images", 1, MAX_IMAGES, where=where, error=InsideError)
    checks.whole(draws, "the number of draws", 0, MAX_DRAWS, where=where, error=InsideError)
    checks.whole(seed, "the seed", 0, 2**31 - 1, where=where, error=InsideError)


def lesion_study(
    net: Net,
    data: TensorData,
    *,
    images: int = DEFAULT_IMAGES,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
) -> LesionStudy:
    """Remove every removable block in turn, then k random ones for k = 1..n.

    Args:
        images: the first this many validation images (all, if there are fewer).
        draws: random sets per k; 0 measures the single lesions only.
        seed: for the random sets.
        progress: called with (share done, message) after each lesion of each chunk.
        cancel: checked before each lesion of each chunk; when set, `Cancelled` is raised.

    Raises:
        InsideError: a setting out of range, data the net cannot take, or no block to remove.
        Cancelled: `cancel` was set.
    """
    where = "lesion study"
    _check_settings(images, draws, seed, where)
    check_fits(net, data, where)
    found, kept = removable(net)
    if not found:
        raise InsideError(
            "this network has no block that can be removed",
            where=where,
            fix="use a net of basic, bottleneck or dense residual blocks",
        )
    n_val = min(images, len(data.y_val))
    if n_val == 0:
        raise InsideError("the dataset has no validation images", where=where)
    blocks = [r.block for r in found]
    draw_sets = _draw_sets(blocks, draws, seed)
    jobs = list(dict.fromkeys([frozenset(), *(frozenset([b]) for b in blocks), *draw_sets]))
    if len(jobs) - 1 > CAPS.max_lesion_sets:
        raise InsideError(
            f"{len(blocks)} blocks with {draws} draws for every k are {len(jobs) - 1:,} "
            f"lesioned nets, more than the {CAPS.max_lesion_sets:,} one study may evaluate",
            where=where,
            fix="use fewer draws",
        )
    x, y = model_inputs(net, data, "val", torch.arange(n_val))
    correct = _count_correct(net, x, y, jobs, progress, cancel)
    accuracy = dict(zip(jobs, (c / n_val for c in correct), strict=True))
    per_k = [[accuracy[s] for s in draw_sets if len(s) == k] for k in range(1, len(blocks) + 1)]
    return LesionStudy(
        name=net.spec.name,
        images=n_val,
        baseline=accuracy[frozenset()],
        removable=found,
        kept=kept,
        single=tuple(accuracy[frozenset([b])] for b in blocks),
        k_draws=tuple(tuple(a) for a in per_k) if draws else (),
    )


def _draw_sets(blocks: list[int], draws: int, seed: int) -> list[frozenset[int]]:
    """For each k: every set of k blocks when there are at most `draws`, else `draws`
    random ones (independent draws, so a set may repeat)."""
    if draws == 0:
        return []
    gen = torch.Generator().manual_seed(seed)
    n, sets = len(blocks), []
    for k in range(1, n + 1):
        if math.comb(n, k) <= draws:
            sets += [frozenset(c) for c in itertools.combinations(blocks, k)]
            continue
        for _ in range(draws):
            pick = torch.randperm(n, generator=gen)[:k].tolist()
            sets.append(frozenset(blocks[j] for j in pick))
    return sets


def _count_correct(
    net: Net,
    x: Tensor,
    y: Tensor,
    jobs: list[frozenset[int]],
    progress: Progress | None,
    cancel: CancelFlag | None,
) -> list[int]:
    """Correct predictions for each set of removed blocks, reusing each chunk's block
    inputs: a lesion runs only the blocks from its first removed one onwards."""
    n_blocks = len(net.blocks)
    start = [min(s, default=n_blocks) for s in jobs]
    cost = [n_blocks - s + 1 for s in start]  # blocks run, plus the head
    chunk = _chunk_size(net)
    n_chunks = -(-len(y) // chunk)
    total, done = n_chunks * sum(cost), 0
    counts = torch.zeros(len(jobs), dtype=torch.long, device=y.device)
    with eval_mode(net):
        for c, lo in enumerate(range(0, len(y), chunk)):
            xc, yc = x[lo : lo + chunk], y[lo : lo + chunk]
            inputs = _block_inputs(net, xc)
            for j, removed in enumerate(jobs):
                check_cancel(cancel, "the lesion study", done, total)
                h = inputs[start[j]]
                for i in range(start[j], n_blocks):
                    block = net.blocks[i]
                    h = removed_output(block, h) if i in removed else block(h)
                counts[j] += (net.head(h).argmax(1) == yc).sum()
                done += cost[j]
                report(progress, done / total, f"lesion study: {c + 1} of {n_chunks} chunks")
    return counts.tolist()  # the one host sync


def _block_inputs(net: Net, x: Tensor) -> list[Tensor]:
    """[input of block 0, ..., input of block n - 1, the features the head takes]."""
    h = net.stem(x)
    out = [h]
    for block in net.blocks:
        h = block(h)
        out.append(h)
    return out


def _chunk_size(net: Net) -> int:
    """Images per chunk so that the cached block inputs stay within CACHE_BYTES."""
    plan = net.spec.validate()
    per_image = sum(math.prod(layer.in_shape) for layer in plan.blocks)
    per_image += math.prod(plan.head.in_shape)
    return max(1, min(EVAL_BATCH, CACHE_BYTES // (4 * per_image)))
