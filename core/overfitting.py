"""Overfitting on small data: the same net trained on 100, 1,000 and all training images,
each run with two arms, without and with dropout (weight decay is one setting for all), so
the gap between training and validation accuracy can be read off each run's curves.

Plans ordinary runs (a name, the nets, the data, the settings: `core.experiments.Experiment`)
and measures the gap from a run's log. No training and no UI here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from core import checks
from core.config import TrainConfig
from core.datasets import DataRequest
from core.errors import ExplainedError
from core.experiments import Experiment
from core.spec import NetSpec
from core.telemetry import Snapshot

PREFIX = "Overfitting: "
SIZES: tuple[int | None, ...] = (100, 1000, None)  # None: every training image
DROPOUT = 0.5  # on the head's features, as AlexNet's classifier (Krizhevsky et al. 2012)
WEIGHT_DECAY = 5e-4  # "with regularisation"; 0 without
DEFAULT_STEPS = 300
EVALUATIONS = 10  # validations per run: enough points for the gap to be seen growing


class OverfittingError(ExplainedError):
    """Settings of the overfitting experiment that cannot work."""


@dataclass(frozen=True)
class Gap:
    """Training vs validation accuracy at a run's last validation. `train` is the mean
    accuracy of the training batches logged since the validation before it (the model
    in training mode, dropout on, as the curves show it)."""

    step: int
    train: float
    val: float

    @property
    def gap(self) -> float:
        return self.train - self.val


def size_label(size: int | None) -> str:
    return "all images" if size is None else f"{size:,} images"


def run_name(size: int | None, weight_decay: float) -> str:
    wd = f"weight decay {weight_decay:g}" if weight_decay else "no weight decay"
    return f"{PREFIX}{size_label(size)}, {wd}"


def is_overfitting(name: str) -> bool:
    return name.startswith(PREFIX)


def arms(spec: NetSpec, dropout: float = DROPOUT) -> tuple[NetSpec, NetSpec]:
    """The net as it is (its head's dropout off) and the same net with dropout `dropout`
    before its head: one run trains both on the same batches from the same weights."""
    checks.number(dropout, "the dropout", 0.05, 0.9, where="overfitting", error=OverfittingError)
    bare = dataclasses.replace(spec, head=dataclasses.replace(spec.head, dropout=0.0))
    dropped = dataclasses.replace(
        spec, head=dataclasses.replace(spec.head, dropout=dropout), name=f"{spec.name} + dropout"
    )
    return bare, dropped


def plan(
    spec: NetSpec,
    data: DataRequest,
    *,
    steps: int = DEFAULT_STEPS,
    weight_decay: float = 0.0,
    config: TrainConfig | None = None,
    sizes: tuple[int | None, ...] = SIZES,
) -> list[Experiment]:
    """One run per training-set size, every one with the same net, steps and seed.

    Args:
        spec: the net (its dropout is set by `arms`).
        data: the dataset; each run asks it for a class-proportional subset of the
            training images (`DataRequest.subset`; the validation split shrinks with it).
        steps: optimizer steps of every run: the same number of updates on each size, so
            the small sets are seen many times over (that is the point).
        weight_decay: L2 penalty of every run (0: none).
        config: other training settings (steps, weight decay and eval_every are set here).
    """
    where = "overfitting"
    checks.whole(steps, "the number of steps", 10, 100_000, where=where, error=OverfittingError)
    checks.number(weight_decay, "the weight decay", 0.0, 0.1, where=where, error=OverfittingError)
    base = config or TrainConfig(lr=0.05, batch_size=64, schedule="cosine")
    config = dataclasses.replace(
        base,
        steps=steps,
        weight_decay=weight_decay,
        eval_every=max(1, steps // EVALUATIONS),
    )
    nets = arms(spec)
    return [
        Experiment(
            run_name(size, weight_decay),
            nets,
            dataclasses.replace(data, subset=size),
            config,
        )
        for size in sizes
    ]


def gap(snapshot: Snapshot) -> Gap | None:
    """The gap at the last validation of a run's arm; None before its first validation."""
    if not snapshot.evals or not snapshot.steps:
        return None
    last = snapshot.evals[-1]
    before = snapshot.evals[-2].step if len(snapshot.evals) > 1 else 0
    steps = snapshot.column("step")
    acc = snapshot.column("accuracy")
    window = (steps > before) & (steps <= last.step)
    if not window.any():  # no step logged in between: the last logged one
        window = steps <= last.step
        if not window.any():
            return None
        return Gap(last.step, float(acc[window][-1]), last.accuracy)
    return Gap(last.step, float(np.mean(acc[window])), last.accuracy)
