"""Which validation images to explain, and the maps of several networks on the same images
(plain and residual side by side): the Explain page's computations, without the page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from core.attribution.methods import AttributionResult, attribute, scaled_progress
from core.attribution.request import (
    AttributionError,
    AttributionRequest,
    CancelFlag,
    Progress,
)
from core.attribution.wrapping import check_images, probabilities

# How to choose the images to explain: key -> what the page says.
PICKS = {
    "misclassified": "misclassified first",
    "class": "of one class",
    "random": "at random",
}
MAX_POOL = 2048  # validation images scored to find misclassified ones: a second on a CPU


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def pick_images(
    probs,
    labels,
    how: str,
    k: int,
    seed: int = 0,
    cls: int | None = None,
) -> np.ndarray:
    """Indices of up to `k` images to explain.

    Args:
        probs: (N, classes), or (nets, N, classes) for twins; needed for "misclassified".
        labels: (N,) true classes.
        how: "misclassified": images some net gets wrong come first (wrong for more nets
            first, then the least probability on the true class), then the least
            confident right ones; "class": images of class `cls` only, in seeded random
            order; "random": seeded random order.
        seed: the random order; one seed gives the same images every time.
    """
    labels = _np(labels).reshape(-1).astype(np.int64)
    n = len(labels)
    k = max(0, min(int(k), n))
    rng = np.random.default_rng(seed)
    if how == "random":
        return rng.permutation(n)[:k]
    if how == "class":
        if cls is None:
            raise AttributionError("choosing images by class needs the class", fix="choose one")
        return rng.permutation(np.flatnonzero(labels == cls))[:k]
    if how != "misclassified":
        raise AttributionError(
            f"unknown way to pick images {how!r}", fix=f"choose one of: {', '.join(PICKS)}"
        )
    if probs is None:
        raise AttributionError("picking misclassified images needs the networks' probabilities")
    p = _np(probs).astype(np.float64)
    p = p[None] if p.ndim == 2 else p  # (nets, N, classes)
    if p.ndim != 3 or p.shape[1] != n:
        raise AttributionError(f"probabilities {p.shape} do not match {n} labels")
    wrong = (p.argmax(-1) != labels).sum(0)  # (N,): how many nets get it wrong
    true_p = p[:, np.arange(n), labels].mean(0)  # (N,): mean probability of the truth
    return np.lexsort((np.arange(n), true_p, -wrong))[:k]  # last key sorts first


def take(t: Tensor, idx) -> Tensor:
    """The rows `idx` (a numpy array or list) of `t`, on `t`'s device."""
    return t[torch.as_tensor(idx, dtype=torch.int64, device=t.device)]


def choose_images(
    models: Mapping[str, nn.Module],
    x: Tensor,
    labels: Tensor,
    how: str,
    k: int,
    *,
    seed: int = 0,
    cls: int | None = None,
    classes: Sequence[str] = (),
) -> np.ndarray:
    """`pick_images` on a validation set; for "misclassified" the networks score the first
    `MAX_POOL` images. Refuses a class with no image, naming it from `classes`."""
    if how == "misclassified":
        pool = min(len(labels), MAX_POOL)
        probs = torch.stack(
            [probabilities(m, check_images(m, x[:pool]), 256).cpu() for m in models.values()]
        )
        return pick_images(probs, labels[:pool].cpu(), how, k)
    idx = pick_images(None, labels.cpu(), how, k, seed, cls)
    if len(idx) == 0:
        name = classes[cls] if cls is not None and 0 <= cls < len(classes) else f"class {cls}"
        raise AttributionError(
            f"the validation set has no image of class {name}", fix="choose another class"
        )
    return idx


@dataclass(frozen=True, kw_only=True, eq=False)
class ImageMaps:
    """Every network's maps of the same images, on the CPU."""

    images: Tensor  # (N, C, H, W) in pixel values
    labels: Tensor  # (N,) their true classes
    indices: np.ndarray  # (N,) where they sit in the validation set
    results: dict[str, AttributionResult]  # network name -> its maps, in column order


def explain_images(
    models: Mapping[str, nn.Module],
    images: Tensor,
    labels: Tensor,
    indices: np.ndarray,
    request: AttributionRequest,
    *,
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
) -> ImageMaps:
    """`attribute` with one request on every network (frozen copies), on the same images;
    progress runs once from 0 to 1 over all of them."""
    results = {}
    for j, (name, model) in enumerate(models.items()):
        part = scaled_progress(progress, j / len(models), (j + 1) / len(models))
        results[name] = attribute(
            model, images, request, labels=labels, progress=part, cancel=cancel
        )
    return ImageMaps(
        images=images.cpu(), labels=labels.cpu(), indices=np.asarray(indices), results=results
    )
