"""Does a map point at the object? The share of positive attribution on an object mask, and
the pointing game (Zhang et al. 2016), for several networks and methods side by side.

Metrics are pure functions of maps (N, H, W) and masks (N, H, W); the comparisons run
`attribute` on frozen copies only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.attribution.methods import attribute, scaled_progress
from core.attribution.request import (
    AttributionError,
    AttributionRequest,
    CancelFlag,
    Progress,
)


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
