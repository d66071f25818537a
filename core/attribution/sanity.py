"""Adebayo et al.'s sanity check (2018, "Sanity Checks for Saliency Maps"): cascading
randomisation of a private copy's weights, from the head down, and how much each map
changes, over all pixels and over the non-black ones; with the edge detector as control.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.attribution.methods import attribute, choose_targets, scaled_progress
from core.attribution.request import (
    AttributionError,
    AttributionRequest,
    CancelFlag,
    Cancelled,
    Progress,
)
from core.attribution.wrapping import check_frozen, check_images, probabilities, unwrap

# (model, images (N, C, H, W), targets (N,)) -> maps (N, H, W): a method outside Captum,
# such as the edge detector that Adebayo et al. use as a control.
Explainer = Callable[[nn.Module, Tensor, Tensor], Tensor]

# A method whose maps keep a rank correlation at or above this with the original at every
# stage, down to all weights random, is flagged "does not depend on the model". Adebayo et
# al. give no number. Measured on a ResNet-8 trained for 150 steps, every weight random:
# on Shapes (no black pixel) the model-dependent methods end between 0 and 0.3, SmoothGrad
# near 0.67 (averaging keeps the image's own structure). On digits, where a third to a half
# of the pixels are exactly black, Integrated Gradients (black baseline) and Input x
# Gradient stay near 0.9: they multiply by the input, so black pixels are 0 in every map,
# whatever the weights (Adebayo et al. 2018 report this for input-multiplied methods).
# Over the non-black pixels alone they end near 0.4, hence the second score. The
# edge-detector control stays at 1; 0.7 sits between the two groups.
INDEPENDENCE_THRESHOLD = 0.7


def spearman(a: Tensor, b: Tensor, keep: Tensor | None = None) -> Tensor:
    """Spearman's rank correlation of each row of `a` with the same row of `b`.

    (N, ...) x (N, ...) -> (N,) float64. Tied values share their average rank, as in
    scipy.stats.spearmanr; a constant row has no ranking, and gives NaN.

    Args:
        keep: (N, ...) bool, the same shape: rank only these entries of each row (the
            image's non-zero pixels, say); a row with fewer than two kept gives NaN.
    """
    a, b = a.detach().cpu().flatten(1).double(), b.detach().cpu().flatten(1).double()
    if keep is None:
        return _pearson(_ranks(a), _ranks(b))
    keep = keep.detach().cpu().flatten(1).bool()
    out = torch.full((len(a),), torch.nan, dtype=torch.float64)
    for i in range(len(a)):
        if keep[i].sum() >= 2:
            out[i] = _pearson(_ranks(a[i : i + 1, keep[i]]), _ranks(b[i : i + 1, keep[i]]))[0]
    return out


def _pearson(ra: Tensor, rb: Tensor) -> Tensor:
    """Pearson's correlation of each row pair. (N, P) x (N, P) -> (N,)."""
    ra = ra - ra.mean(1, keepdim=True)
    rb = rb - rb.mean(1, keepdim=True)
    return (ra * rb).sum(1) / ((ra * ra).sum(1) * (rb * rb).sum(1)).sqrt()


def _ranks(x: Tensor) -> Tensor:
    """Average ranks (1-based) along each row. (N, P) -> (N, P) float64."""
    out = torch.empty(x.shape, dtype=torch.float64)
    for i, row in enumerate(x.detach().cpu().double()):
        _, inverse, counts = torch.unique(row, sorted=True, return_inverse=True, return_counts=True)
        last = counts.cumsum(0).double()  # rank of the last value of each tie group
        out[i] = (last - (counts.double() - 1) / 2)[inverse]
    return out


def nonzero_pixels(images: Tensor) -> Tensor:
    """Pixels where the image is not black: some channel non-zero. (N, C, H, W) -> (N, H, W).

    On such pixels a method that multiplies by the input (Input x Gradient, Integrated
    Gradients from a black baseline) can say something; on black ones it is zero whatever
    the weights, which holds its rank correlation up in the sanity check.
    """
    return (images.detach().cpu() != 0).any(1)


def edge_detector(model: nn.Module, images: Tensor, targets: Tensor) -> Tensor:
    """Sobel edge strength of the image, ignoring model and target: Adebayo et al.'s control
    for a "map" that cannot depend on the weights. (N, C, H, W) -> (N, H, W)."""
    grey = images.float().mean(1, keepdim=True).cpu()  # (N, C, H, W) -> (N, 1, H, W)
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernels = torch.stack([sobel, sobel.T])[:, None]  # (2, 1, 3, 3): d/dx and d/dy
    grad = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kernels)
    return grad.pow(2).sum(1).sqrt()


CONTROLS: dict[str, Explainer] = {"Edge detector (ignores the model)": edge_detector}


def randomisation_stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) from the top down: head, last block, ..., first block, stem.

    Blocks without weights (pooling, dropout, flatten) have nothing to randomise and are
    left out. A model not built here is cut at its top-level children.
    """
    model = unwrap(model)
    if isinstance(getattr(model, "blocks", None), nn.Sequential):
        parts = [("stem", model.stem)]
        parts += [(f"block {i}", b) for i, b in enumerate(model.blocks)]
        parts.append(("head", model.head))
    else:
        parts = list(model.named_children())
    return [(name, m) for name, m in reversed(parts) if any(True for _ in m.parameters())]


def randomise_(module: nn.Module, generator: torch.Generator) -> None:
    """Fresh random weights in place: He-normal (fan in) for convs and linears, zero biases;
    BatchNorm back to its start (weight 1, bias 0, mean 0, variance 1), which is also what
    PyTorch does when it creates one. Draws on the CPU, from `generator` only."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                w = m.weight
                std = math.sqrt(2.0 / w[0].numel())
                w.copy_(torch.randn(w.shape, generator=generator) * std)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.reset_parameters()  # also resets the running statistics


@dataclass(frozen=True, kw_only=True)
class SanityCurve:
    method: str
    correlation: tuple[float, ...]  # mean Spearman with the original maps, one per stage
    depends_on_model: bool  # False: flag "does not depend on the model" to the user
    seconds_per_image: float  # one map of one image, averaged over the stages
    # The same score over each image's non-zero pixels only (issue: black backgrounds),
    # and the flag it gives; equal to the above where no pixel is black.
    correlation_nonzero: tuple[float, ...] = ()
    depends_on_model_nonzero: bool = True


@dataclass(frozen=True, kw_only=True)
class SanityReport:
    stages: tuple[str, ...]  # "original", "head", "block 8", ..., "stem" (cumulative)
    curves: tuple[SanityCurve, ...]
    threshold: float
    black_share: float = 0.0  # share of the images' pixels that are exactly black


class _Maps:
    """Every method's maps on the working copy as it is now, with progress and cancel."""

    def __init__(self, work, x, explainers, targets, names, jobs, progress, cancel):
        self.work, self.x, self.explainers, self.targets = work, x, explainers, targets
        self.names, self.jobs, self.progress, self.cancel = names, jobs, progress, cancel
        self.done, self.seconds = 0, [0.0] * len(names)

    def now(self, stage: str) -> list[Tensor]:
        """(N, H, W) absolute maps, one per method, with the weights random down to `stage`."""
        out = []
        for j, (explain, t) in enumerate(zip(self.explainers, self.targets, strict=True)):
            if self.cancel is not None and self.cancel.is_set():
                raise Cancelled(f"the sanity check stopped at your request at '{stage}'")
            inner = scaled_progress(
                self.progress, self.done / self.jobs, (self.done + 1) / self.jobs
            )
            tick = time.perf_counter()
            if isinstance(explain, AttributionRequest):
                m = attribute(
                    self.work, self.x, explain, targets=t, progress=inner, cancel=self.cancel
                ).maps
            else:
                m = explain(self.work, self.x, t).detach().float().cpu()
            self.seconds[j] += time.perf_counter() - tick
            out.append(m.abs())
            self.done += 1
            if self.progress is not None:
                what = f"{self.names[j]}, weights random down to {stage}"
                self.progress(self.done / self.jobs, f"sanity check: {what}")
        return out


def _mean_rho(original: Tensor, now: Tensor, keep: Tensor) -> tuple[float, float]:
    """Mean Spearman over the images: over all pixels, and over the non-black ones only.

    A map that became flat has no ranking left in common with the original and counts as
    0; an image with fewer than two non-black pixels counts with all its pixels."""
    full = spearman(original, now)
    nonzero = torch.where(keep.flatten(1).sum(1) >= 2, spearman(original, now, keep), full)
    return full.nan_to_num(0.0).mean().item(), nonzero.nan_to_num(0.0).mean().item()


def sanity_check(
    model: nn.Module,
    images: Tensor,
    requests: Sequence[AttributionRequest],
    *,
    controls: Mapping[str, Explainer] = CONTROLS,
    labels: Tensor | None = None,
    threshold: float = INDEPENDENCE_THRESHOLD,
    seed: int = 0,
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
) -> SanityReport:
    """Cascading randomisation: how much does each map change as the weights are replaced
    by random ones, from the head down to the stem?

    Each stage randomises one more part of a private copy, then compares every method's
    maps with the original ones: Spearman rank correlation of the absolute maps (strength
    regardless of sign, Adebayo et al. Fig. 2), per image, averaged; once over all pixels
    and once over the pixels where the image is not black. The classes explained stay
    those chosen on the original model.

    Raises:
        AttributionError: the model is not frozen, or has no weights to randomise.
        Cancelled: `cancel` was set (checked before every map).
    """
    check_frozen(model)
    x = check_images(model, images)
    work = copy.deepcopy(model)  # frozen already; the caller's copy keeps its weights
    stages = randomisation_stages(work)
    if not stages:
        raise AttributionError("this model has no weights to randomise; nothing to check")
    probs = probabilities(work, x, 64)
    targets = [choose_targets(r, probs, labels) for r in requests]
    targets += [probs.argmax(1)] * len(controls)
    names = [r.label for r in requests] + list(controls)
    explainers = list(requests) + list(controls.values())
    jobs = (len(stages) + 1) * len(names)
    maps = _Maps(work, x, explainers, targets, names, jobs, progress, cancel)
    keep, gen = nonzero_pixels(x), torch.Generator().manual_seed(seed)
    original = maps.now("nothing (original)")
    full, nonzero = [[1.0] for _ in names], [[1.0] for _ in names]
    for stage, module in stages:
        randomise_(module, gen)
        for j, m in enumerate(maps.now(stage)):
            rho, rho_nonzero = _mean_rho(original[j], m, keep)
            full[j].append(rho)
            nonzero[j].append(rho_nonzero)
    return SanityReport(
        stages=("original", *(name for name, _ in stages)),
        curves=_curves(names, full, nonzero, maps.seconds, len(x) * (len(stages) + 1), threshold),
        threshold=threshold,
        black_share=1.0 - keep.float().mean().item(),
    )


def _curves(names, full, nonzero, seconds, n_maps: int, threshold: float):
    """One SanityCurve per method from its correlations (all pixels, non-black pixels)."""
    return tuple(
        SanityCurve(
            method=name,
            correlation=tuple(c),
            depends_on_model=min(c[1:]) < threshold,
            seconds_per_image=s / n_maps,
            correlation_nonzero=tuple(cz),
            depends_on_model_nonzero=min(cz[1:]) < threshold,
        )
        for name, c, cz, s in zip(names, full, nonzero, seconds, strict=True)
    )


def sanity_checks(
    models: Mapping[str, nn.Module],
    images: Tensor,
    requests: Sequence[AttributionRequest],
    *,
    labels: Tensor | None = None,
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
) -> dict[str, SanityReport]:
    """`sanity_check` of every network (plain and residual) on the same images; progress
    runs once from 0 to 1 over all of them."""
    reports = {}
    for j, (name, model) in enumerate(models.items()):
        reports[name] = sanity_check(
            model,
            images,
            requests,
            labels=labels,
            progress=scaled_progress(progress, j / len(models), (j + 1) / len(models)),
            cancel=cancel,
        )
    return reports
