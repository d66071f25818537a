"""Errors per class of a trained net: the confusion matrix (counts and row-normalised),
per-class accuracy, and the validation images it gets wrong most confidently.

`confusion(net, data)` predicts; `confusion_from(...)` does the counting on predictions
alone (numpy), so it can be checked against any other implementation. No UI here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from core import checks
from core.data import TensorData
from core.inside import (
    CancelFlag,
    InsideError,
    Progress,
    check_fits,
    eval_mode,
    logits,
    model_inputs,
)
from core.limits import INSIDE_LIMITS

DEFAULT_MISTAKES = INSIDE_LIMITS.mistakes  # defaults and caps with reasons: core.limits
MAX_MISTAKES = INSIDE_LIMITS.max_mistakes


@dataclass(frozen=True)
class Mistake:
    """A wrongly classified validation image: its position in the validation split, the
    true and the predicted class (indices into `classes`), and the softmax probability
    the net gave its (wrong) prediction."""

    index: int
    true: int
    predicted: int
    confidence: float


@dataclass(frozen=True)
class Confusion:
    """`counts[t][p]`: validation images of true class t predicted as p (rows true, columns
    predicted, as scikit-learn's confusion_matrix). `mistakes`: the most confident wrong
    predictions first."""

    name: str
    classes: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]
    mistakes: tuple[Mistake, ...]

    @property
    def images(self) -> int:
        return sum(map(sum, self.counts))

    @property
    def accuracy(self) -> float:
        right = sum(self.counts[i][i] for i in range(len(self.classes)))
        return right / self.images if self.images else 0.0

    @property
    def rates(self) -> tuple[tuple[float, ...], ...]:
        """Each row divided by its total: where the images of a class went (a row with no
        images stays all zero)."""
        return tuple(tuple(c / sum(row) if sum(row) else 0.0 for c in row) for row in self.counts)

    @property
    def per_class(self) -> tuple[float | None, ...]:
        """Accuracy on each class's images (recall); None for a class with no images."""
        return tuple(row[i] / sum(row) if sum(row) else None for i, row in enumerate(self.counts))


def confusion_from(
    true: np.ndarray,
    predicted: np.ndarray,
    confidence: np.ndarray,
    classes: tuple[str, ...],
    *,
    mistakes: int = DEFAULT_MISTAKES,
    name: str = "",
) -> Confusion:
    """Count (true, predicted) pairs and pick the `mistakes` most confident wrong ones
    (ties: the earlier image first). Arrays are per image, in validation order."""
    true, predicted = np.asarray(true, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    confidence = np.asarray(confidence, dtype=np.float64)
    c = len(classes)
    counts = np.bincount(true * c + predicted, minlength=c * c).reshape(c, c)
    wrong = np.flatnonzero(true != predicted)
    order = wrong[np.lexsort((wrong, -confidence[wrong]))][:mistakes]
    picked = tuple(
        Mistake(int(i), int(true[i]), int(predicted[i]), float(confidence[i])) for i in order
    )
    return Confusion(name, tuple(classes), tuple(map(tuple, counts.tolist())), picked)


def confusion(
    net: nn.Module,
    data: TensorData,
    *,
    images: int | None = None,
    mistakes: int = DEFAULT_MISTAKES,
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
) -> Confusion:
    """The net's confusion matrix on the validation split (the first `images`, or all).

    Raises:
        InsideError: a setting out of range, or data the net cannot take.
        Cancelled: `cancel` was set (checked before each batch).
    """
    where = "errors per class"
    n = len(data.y_val)
    if images is not None:
        checks.whole(images, "the number of images", 1, 10**7, where=where, error=InsideError)
        n = min(n, images)
    checks.whole(
        mistakes, "the number of mistakes shown", 0, MAX_MISTAKES, where=where, error=InsideError
    )
    check_fits(net, data, where)
    if n == 0:
        raise InsideError("the dataset has no validation images", where=where)
    x, y = model_inputs(net, data, "val", torch.arange(n))
    with eval_mode(net):
        scores = logits(net, x, cancel=cancel, progress=progress, what="errors per class")
    probs = scores.softmax(1)
    confidence, predicted = probs.max(1)
    spec = getattr(net, "spec", None)
    return confusion_from(
        y.cpu().numpy(),
        predicted.cpu().numpy(),
        confidence.cpu().numpy(),
        data.classes,
        mistakes=mistakes,
        name=spec.name if spec is not None else "",
    )
