"""How good is a map? Localisation against object masks, and Adebayo et al.'s sanity check.

Metrics are pure functions of maps (N, H, W) and masks (N, H, W); the comparisons run
`core.attribution.attribute` on frozen copies only. No UI and no printing here.
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

from core.attribution import (
    AttributionError,
    AttributionRequest,
    CancelFlag,
    Cancelled,
    Progress,
    attribute,
    check_frozen,
    check_images,
    choose_targets,
    probabilities,
    scaled_progress,
    unwrap,
)

# (model, images (N, C, H, W), targets (N,)) -> maps (N, H, W): a method outside Captum,
# such as the edge detector that Adebayo et al. use as a control.
Explainer = Callable[[nn.Module, Tensor, Tensor], Tensor]

# A method whose maps keep a rank correlation at or above this with the original at every
# stage, down to all weights random, is flagged "does not depend on the model". Adebayo et
# al. give no number. On our small nets, model-dependent methods end between -0.1 and 0.6
# with every weight random (SmoothGrad highest: averaging keeps the image's own structure),
# while the edge-detector control stays at 1; 0.7 leaves room on both sides.
INDEPENDENCE_THRESHOLD = 0.7


# --- localisation ------------------------------------------------------------------------


def _check_pair(maps: Tensor, masks: Tensor) -> None:
    if maps.dim() != 3 or masks.shape != maps.shape or masks.dtype != torch.bool:
        raise AttributionError(
            f"maps and masks must both be (N, H, W), the masks true on the object, got "
            f"maps {tuple(maps.shape)} and masks {tuple(masks.shape)} of {masks.dtype}"
        )


def share_inside(maps: Tensor, masks: Tensor) -> Tensor:
    """The share of each map's positive attribution that falls on the object. (N,) floats.

    NaN for a map with no positive value at all: it points nowhere, so it has no share.
    """
    _check_pair(maps, masks)
    positive = maps.float().clamp(min=0).flatten(1)  # (N, H, W) -> (N, H*W)
    total = positive.sum(1)
    inside = (positive * masks.flatten(1)).sum(1)
    return torch.where(total > 0, inside / total.clamp(min=1e-30), torch.nan)


def pointing_game(maps: Tensor, masks: Tensor, *, tolerance: int = 1) -> Tensor:
    """Does each map's highest pixel land on the object (Zhang et al. 2016)? (N,) bools.

    `tolerance` grows the mask by that many pixels, as Zhang et al. allow 15 pixels at
    224 px (1 is the same share at 16-32 px). A flat map points nowhere and misses.
    """
    _check_pair(maps, masks)
    if tolerance > 0:  # dilation: a (2t+1)^2 max filter over the mask
        k = 2 * tolerance + 1
        masks = F.max_pool2d(masks[:, None].float(), k, stride=1, padding=tolerance)[:, 0] > 0
    flat = maps.float().flatten(1)
    top = flat.argmax(1, keepdim=True)  # (N, 1): the first of tied maxima
    points = flat.max(1).values > flat.min(1).values
    return masks.flatten(1).gather(1, top)[:, 0] & points


@dataclass(frozen=True, kw_only=True)
class Localisation:
    """Means over images; `mask_area` is what a map spread evenly would score."""

    share_inside: float  # mean over maps that have positive attribution
    hit_rate: float  # pointing game
    mask_area: float  # mean share of pixels on the object: the chance level
    images: int
    without_positive: int  # maps with no positive attribution, left out of share_inside


def score_localisation(maps: Tensor, masks: Tensor, *, tolerance: int = 1) -> Localisation:
    shares = share_inside(maps, masks)
    scored = ~shares.isnan()
    return Localisation(
        share_inside=shares[scored].mean().item() if scored.any() else math.nan,
        hit_rate=pointing_game(maps, masks, tolerance=tolerance).float().mean().item(),
        mask_area=masks.float().mean().item(),
        images=len(maps),
        without_positive=int((~scored).sum()),
    )


@dataclass(frozen=True, kw_only=True)
class LocalisationRow:
    model: str
    method: str
    score: Localisation
    seconds_per_image: float


def compare_localisation(
    models: Mapping[str, nn.Module],
    images: Tensor,
    masks: Tensor,
    requests: Sequence[AttributionRequest],
    *,
    labels: Tensor | None = None,
    tolerance: int = 1,
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
) -> tuple[LocalisationRow, ...]:
    """Every method on every model (plain and residual, side by side), scored on masks.

    Args:
        models: name -> frozen copy, e.g. {"Plain-20": ..., "ResNet-20": ...}.
        images, masks: (N, C, H, W) and (N, H, W) bool, true on the object.
        requests: the methods, each labelled by `request.label` in the rows.
    """
    rows, jobs = [], len(models) * len(requests)
    for m, (name, model) in enumerate(models.items()):
        for r, request in enumerate(requests):
            k = m * len(requests) + r
            result = attribute(
                model,
                images,
                request,
                labels=labels,
                progress=scaled_progress(progress, k / jobs, (k + 1) / jobs),
                cancel=cancel,
            )
            score = score_localisation(result.maps, masks.cpu(), tolerance=tolerance)
            rows.append(
                LocalisationRow(
                    model=name,
                    method=request.label,
                    score=score,
                    seconds_per_image=result.seconds_per_image,
                )
            )
    return tuple(rows)


# --- sanity check (Adebayo et al. 2018, "Sanity Checks for Saliency Maps") ---------------


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman's rank correlation of each row of `a` with the same row of `b`.

    (N, ...) x (N, ...) -> (N,). Tied values share their average rank, as in
    scipy.stats.spearmanr; a constant row has no ranking, and gives NaN.
    """
    ra, rb = _ranks(a.flatten(1)), _ranks(b.flatten(1))
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


@dataclass(frozen=True, kw_only=True)
class SanityReport:
    stages: tuple[str, ...]  # "original", "head", "block 8", ..., "stem" (cumulative)
    curves: tuple[SanityCurve, ...]
    threshold: float


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
    regardless of sign, Adebayo et al. Fig. 2), per image, averaged. The classes explained
    stay those chosen on the original model. A map that became flat has no ranking left
    in common with the original and counts as 0.

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
    jobs, done, gen = (len(stages) + 1) * len(names), 0, torch.Generator().manual_seed(seed)
    seconds = [0.0] * len(names)

    def maps_now(stage: str) -> list[Tensor]:
        nonlocal done
        out = []
        for j, (explain, t) in enumerate(zip(explainers, targets, strict=True)):
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"the sanity check stopped at your request at '{stage}'")
            inner = scaled_progress(progress, done / jobs, (done + 1) / jobs)
            tick = time.perf_counter()
            if isinstance(explain, AttributionRequest):
                m = attribute(work, x, explain, targets=t, progress=inner, cancel=cancel).maps
            else:
                m = explain(work, x, t).detach().float().cpu()
            seconds[j] += time.perf_counter() - tick
            out.append(m.abs())
            done += 1
            if progress is not None:
                progress(done / jobs, f"sanity check: {names[j]}, weights random down to {stage}")
        return out

    original = maps_now("nothing (original)")
    curves = [[1.0] for _ in names]
    for stage, module in stages:
        randomise_(module, gen)
        for j, m in enumerate(maps_now(stage)):
            rho = spearman(original[j], m).nan_to_num(0.0)
            curves[j].append(rho.mean().item())
    n_maps = len(x) * (len(stages) + 1)
    return SanityReport(
        stages=("original", *(name for name, _ in stages)),
        curves=tuple(
            SanityCurve(
                method=name,
                correlation=tuple(c),
                depends_on_model=min(c[1:]) < threshold,
                seconds_per_image=s / n_maps,
            )
            for name, c, s in zip(names, curves, seconds, strict=True)
        ),
        threshold=threshold,
    )
