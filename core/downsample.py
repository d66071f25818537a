"""Downsampled step series for charts, from scratch (`bucket_records`) or kept as steps
arrive (`Buckets`), with the same buckets either way: runs of 2^k consecutive steps, the
fewest k that keeps at most `max_points` of them. Each bucket becomes one record: the
mean of its losses, accuracies and per-layer norms, the rest (step, lr, seconds) from
its last step. Kept as steps arrive, a chart's refresh folds in only the new steps and
costs the same at step 100 and at step 1,000,000. No torch, no locks: callers lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

MEANS = ("loss", "accuracy")  # scalars averaged over a bucket; the others are its last's
SERIES = ("grad_norms", "weight_norms", "update_ratios")  # per-layer, averaged per layer


def bucket_width(n: int, max_points: int) -> int:
    """Steps per bucket: the smallest power of two that keeps `n` steps in at most
    `max_points` buckets (the last one may be partly filled)."""
    if max_points < 1:
        raise ValueError(f"max_points must be at least 1, got {max_points}")
    width = 1
    while -(-n // width) > max_points:
        width *= 2
    return width


def _shape(record) -> tuple[int, ...]:
    return tuple(len(getattr(record, name)) for name in SERIES)


def _rows(records: Sequence, shape: tuple[int, ...]) -> np.ndarray:
    """(len(records), 2 + sum(shape)): loss, accuracy, then every per-layer series."""
    out = np.empty((len(records), len(MEANS) + sum(shape)), dtype=np.float64)
    for i, r in enumerate(records):
        if _shape(r) != shape:
            raise ValueError(
                f"step {r.step} has per-layer series of lengths {_shape(r)}, the steps "
                f"before it {shape}: every step of a log must have the same layers"
            )
        out[i] = (r.loss, r.accuracy, *r.grad_norms, *r.weight_norms, *r.update_ratios)
    return out


def _record(mean: np.ndarray, last, shape: tuple[int, ...]):
    """The bucket's record: `mean` (a row as `_rows` lays it out) over its last step's."""
    values = mean.tolist()
    series, at = {}, len(MEANS)
    for name, n in zip(SERIES, shape, strict=True):
        series[name], at = tuple(values[at : at + n]), at + n
    return replace(last, loss=values[0], accuracy=values[1], **series)


def bucket_records(records: Sequence, max_points: int) -> tuple:
    """The records downsampled from scratch: every step when there are at most
    `max_points`, else one mean record per bucket (`bucket_width`)."""
    n = len(records)
    if n <= max_points:
        return tuple(records)
    width = bucket_width(n, max_points)
    shape = _shape(records[0])
    rows = _rows(records, shape)
    return tuple(
        _record(rows[a : a + width].mean(axis=0), records[min(a + width, n) - 1], shape)
        for a in range(0, n, width)
    )


class Buckets:
    """The buckets of a growing log, kept as steps arrive: the last bucket fills up to
    `width` steps; when all `max_points` are full, neighbours merge pairwise and the
    width doubles. Equal to `bucket_records` of the same steps (sums, not means, are
    kept, so a merge loses nothing); folding in n steps costs O(n) plus, now and then,
    one O(max_points) merge."""

    def __init__(self, max_points: int):
        bucket_width(0, max_points)  # validates
        self.max_points = max_points
        self.width = 1
        self.count = 0  # steps folded in
        self._shape: tuple[int, ...] | None = None
        self._sums: list[np.ndarray] = []
        self._counts: list[int] = []
        self._lasts: list = []
        self._done: list = []  # records of full buckets (all but the last), built once

    def extend(self, records: Sequence) -> None:
        """Fold in the steps logged after the last `extend`, in order."""
        if not records:
            return
        if self._shape is None:
            self._shape = _shape(records[0])
        rows, i = _rows(records, self._shape), 0
        while i < len(records):
            if self._counts and self._counts[-1] < self.width:  # fill the last bucket
                k = min(self.width - self._counts[-1], len(records) - i)
                self._sums[-1] = self._sums[-1] + rows[i : i + k].sum(axis=0)
                self._counts[-1] += k
            elif len(self._counts) >= self.max_points:
                self._merge()
                continue
            else:  # a new bucket
                k = min(self.width, len(records) - i)
                self._sums.append(rows[i : i + k].sum(axis=0))
                self._counts.append(k)
                self._lasts.append(None)
            self._lasts[-1] = records[i + k - 1]
            i += k
        self.count += len(records)

    def _merge(self) -> None:
        """Neighbours pairwise (an odd last one stays, now half full); the width doubles."""
        sums, counts, lasts = self._sums, self._counts, self._lasts
        pairs = len(counts) // 2
        self._sums = [sums[2 * j] + sums[2 * j + 1] for j in range(pairs)] + sums[2 * pairs :]
        self._counts = [counts[2 * j] + counts[2 * j + 1] for j in range(pairs)]
        self._counts += counts[2 * pairs :]
        self._lasts = [lasts[2 * j + 1] for j in range(pairs)] + lasts[2 * pairs :]
        self._done = []
        self.width *= 2

    @property
    def last(self):
        """The last step folded in, as logged; None before any."""
        return self._lasts[-1] if self._lasts else None

    def _merged(self, j: int):
        return _record(self._sums[j] / self._counts[j], self._lasts[j], self._shape)

    def records(self) -> tuple:
        """One record per bucket; the full ones are built once, the last one each call."""
        if not self._counts:
            return ()
        full = len(self._counts) - 1  # a full bucket does not change until a merge
        self._done += [self._merged(j) for j in range(len(self._done), full)]
        return (*self._done, self._merged(full))
