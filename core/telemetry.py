"""RunLog: the append-only record of one training run, safe to read while it grows.

The trainer appends; views and exporters take immutable snapshots. Snapshots keep
every step (for export) and downsample on request (for charts), so a long run stays
light in the browser; a live chart reads `chart_snapshot`, downsampled as steps arrive
(core.downsample), so its refresh costs the same at any length. No torch here: records
hold plain floats.
"""

from __future__ import annotations

import csv
import io
import threading
from dataclasses import dataclass, field, replace

import numpy as np

from core.downsample import Buckets, bucket_records


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One logged optimizer step. Per-layer tuples follow `RunLog.layers`."""

    step: int  # optimizer steps done, counting from 1
    epoch: float
    loss: float
    accuracy: float
    lr: float
    grad_norms: tuple[float, ...]  # L2 norm of each layer's gradient, before the step
    weight_norms: tuple[float, ...]
    update_ratios: tuple[float, ...]  # ||w_after - w_before|| / ||w_before||
    images_per_s: float = 0.0
    seconds: float = 0.0  # since the run started, pauses excluded


@dataclass(frozen=True, slots=True)
class EvalRecord:
    step: int
    epoch: float
    loss: float
    accuracy: float


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened at a step: a skip toggle, an lr change, a pause, an end."""

    step: int
    kind: str  # skip, lr, pause, resume, stop, diverged, failed, finished
    detail: str


@dataclass(frozen=True)
class Snapshot:
    """An immutable view of a RunLog at one moment."""

    layers: tuple[str, ...]
    param_names: tuple[str, ...]
    steps: tuple[StepRecord, ...]
    evals: tuple[EvalRecord, ...]
    events: tuple[Event, ...]
    version: int
    meta: dict = field(default_factory=dict)
    latest: StepRecord | None = None  # of a downsampled snapshot: its last step as logged

    @property
    def last(self) -> StepRecord | None:
        """The last step as logged (not a bucket's mean)."""
        if self.latest is not None:
            return self.latest
        return self.steps[-1] if self.steps else None

    def column(self, name: str) -> np.ndarray:
        """One scalar per step: 'step', 'loss', 'accuracy', 'lr', ..."""
        return np.array([getattr(r, name) for r in self.steps], dtype=np.float64)

    def matrix(self, name: str = "grad_norms") -> np.ndarray:
        """(steps, layers) array of a per-layer series."""
        if not self.steps:
            return np.zeros((0, len(self.layers)))
        return np.array([getattr(r, name) for r in self.steps], dtype=np.float64)

    def downsample(self, max_points: int) -> Snapshot:
        """At most `max_points` steps: each bucket of 2^k consecutive steps becomes its
        mean (per-layer norms too), labelled with the bucket's last step
        (core.downsample, the buckets a live chart keeps). Evals and events are few and
        kept whole."""
        if len(self.steps) <= max_points:
            return self
        return replace(self, steps=bucket_records(self.steps, max_points), latest=self.last)

    def to_csv(self) -> str:
        """Every step (not downsampled) with per-layer gradient norms, then evals and events."""
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(
            [
                *("step", "epoch", "loss", "accuracy", "lr", "images_per_s", "seconds"),
                *(f"grad_norm:{layer}" for layer in self.layers),
                *(f"update_ratio:{layer}" for layer in self.layers),
            ]
        )
        for r in self.steps:
            w.writerow(
                [
                    *(r.step, r.epoch, r.loss, r.accuracy, r.lr, r.images_per_s, r.seconds),
                    *r.grad_norms,
                    *r.update_ratios,
                ]
            )
        w.writerow([])
        w.writerow(["eval_step", "epoch", "val_loss", "val_accuracy"])
        for e in self.evals:
            w.writerow([e.step, e.epoch, e.loss, e.accuracy])
        w.writerow([])
        w.writerow(["event_step", "kind", "detail"])
        for e in self.events:
            w.writerow([e.step, e.kind, e.detail])
        return out.getvalue()


class RunLog:
    """Append-only, lock-protected log of one run (one arm of a twin run)."""

    def __init__(self, layers: tuple[str, ...], param_names: tuple[str, ...] = (), meta=None):
        self.layers = tuple(layers)
        self.param_names = tuple(param_names)
        self.meta = dict(meta or {})
        self._lock = threading.Lock()
        self._steps: list[StepRecord] = []
        self._evals: list[EvalRecord] = []
        self._events: list[Event] = []
        self._version = 0
        self._charts: dict[int, Buckets] = {}  # max_points -> the steps so far, bucketed
        self._charts_lock = threading.Lock()  # readers fold in new steps one at a time

    def append_step(self, record: StepRecord) -> None:
        if len(record.grad_norms) != len(self.layers):
            raise ValueError(
                f"expected {len(self.layers)} layer norms, got {len(record.grad_norms)}"
            )
        with self._lock:
            self._steps.append(record)
            self._version += 1

    def append_eval(self, record: EvalRecord) -> None:
        with self._lock:
            self._evals.append(record)
            self._version += 1

    def append_event(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)
            self._version += 1

    def set_meta(self, **values) -> None:
        """Add or replace meta entries (e.g. the spec after a live skip toggle)."""
        with self._lock:
            self.meta.update(values)
            self._version += 1

    @property
    def version(self) -> int:
        """Grows with every append: a reader can skip redrawing when it has not changed."""
        return self._version

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(
                layers=self.layers,
                param_names=self.param_names,
                steps=tuple(self._steps),
                evals=tuple(self._evals),
                events=tuple(self._events),
                version=self._version,
                meta=dict(self.meta),  # a copy: later set_meta calls do not reach it
            )

    def chart_snapshot(self, max_points: int) -> Snapshot:
        """A snapshot downsampled to at most `max_points` steps (as `Snapshot.downsample`
        gives), kept as the log grows: each call folds in only the steps logged since
        the last one, so a live chart's refresh costs the same at any run length."""
        with self._charts_lock:
            buckets = self._charts.setdefault(max_points, Buckets(max_points))
            with self._lock:
                new = self._steps[buckets.count :]
                latest = self._steps[-1] if self._steps else None
                evals, events = tuple(self._evals), tuple(self._events)
                version, meta = self._version, dict(self.meta)
            buckets.extend(new)
            steps = buckets.records()
        return Snapshot(
            layers=self.layers,
            param_names=self.param_names,
            steps=steps,
            evals=evals,
            events=events,
            version=version,
            meta=meta,
            latest=latest,
        )
