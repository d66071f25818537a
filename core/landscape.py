"""Loss landscape (Li, Xu, Taylor, Studer and Goldstein 2018, "Visualizing the Loss
Landscape of Neural Nets"): the loss around a trained net's weights along random,
filter-normalised directions, in 1D and 2D, and along the straight line from the initial
to the final weights (Goodfellow, Vinyals and Saxe 2015).

The loss is measured on a fixed subset of the training images in eval mode. The weights
are moved in place and put back bit for bit afterwards, also on error or cancel.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from core import checks
from core.data import TensorData
from core.inside import (
    CancelFlag,
    InsideError,
    Progress,
    check_cancel,
    check_fits,
    eval_mode,
    evaluate,
    model_inputs,
    report,
    scaled_progress,
    train_subset,
)
from core.limits import INSIDE_LIMITS

CAPS = INSIDE_LIMITS  # defaults and caps, each with its reason (core.limits)
MAX_GRID, MAX_SPAN = CAPS.max_landscape_grid, CAPS.max_landscape_span
MAX_IMAGES = CAPS.max_landscape_images


@dataclass(frozen=True, kw_only=True)
class LandscapeSettings:
    """The grid (points per axis, from `low` to `high`), the training images the loss is
    measured on, and the seed of the random directions and the image subset.

    An odd grid over a range symmetric around 0 puts the trained weights on the centre.
    """

    grid: int = CAPS.landscape_grid
    low: float = -1.0
    high: float = 1.0
    images: int = CAPS.landscape_images
    seed: int = 0

    def __post_init__(self) -> None:
        where = "loss landscape"
        checks.whole(
            self.grid, "the grid (points per axis)", 2, MAX_GRID, where=where, error=InsideError
        )
        for name in ("low", "high"):
            checks.number(
                getattr(self, name),
                f"the range's {name} end",
                -MAX_SPAN,
                MAX_SPAN,
                where=where,
                error=InsideError,
            )
        if not self.low < self.high:
            raise InsideError(
                f"the range runs from {self.low:g} to {self.high:g}",
                where=where,
                fix="make its low end smaller than its high end, e.g. -1 to 1",
            )
        checks.whole(
            self.images, "the number of images", 1, MAX_IMAGES, where=where, error=InsideError
        )
        checks.whole(self.seed, "the seed", 0, 2**31 - 1, where=where, error=InsideError)

    @property
    def alphas(self) -> tuple[float, ...]:
        return tuple(torch.linspace(self.low, self.high, self.grid, dtype=torch.float64).tolist())


# Interpolation from the initial (alpha = 0) to the final (alpha = 1) weights.
INTERPOLATION = LandscapeSettings(grid=11, low=0.0, high=1.0)


@dataclass(frozen=True)
class Slice1D:
    """Loss and accuracy at `alphas` along one direction (or the interpolation line)."""

    name: str
    alphas: tuple[float, ...]
    losses: tuple[float, ...]
    accuracies: tuple[float, ...]
    images: int


@dataclass(frozen=True)
class Slice2D:
    """Loss and accuracy on the plane of two directions: `losses[j][i]` is at
    (alphas[i], betas[j]), rows by beta, as a contour plot takes its z."""

    name: str
    alphas: tuple[float, ...]
    betas: tuple[float, ...]
    losses: tuple[tuple[float, ...], ...]
    accuracies: tuple[tuple[float, ...], ...]
    images: int


def _stream(seed: int, axis: int, name: str, shape: torch.Size) -> int:
    """A generator seed per parameter, from its name and shape: twins whose parameters
    share names and shapes draw the same raw directions, whatever else they hold."""
    return zlib.crc32(f"{seed}/{axis}/{name}/{tuple(shape)}".encode())


def random_direction(net: nn.Module, seed: int = 0, axis: int = 0) -> list[Tensor]:
    """One random direction in weight space, a tensor per parameter (`net.parameters()`
    order), filter-normalised as Li et al. 2018, sec. 4: each filter (a conv's output
    channel, a linear layer's row) of a Gaussian draw is scaled to the norm of the same
    filter of the weights. BatchNorm parameters and biases (1-D tensors) get zero, so
    they stay as trained (the paper's choice)."""
    out = []
    for name, p in net.named_parameters():
        w = p.detach()
        if w.dim() <= 1:
            out.append(torch.zeros_like(w))
            continue
        gen = torch.Generator().manual_seed(_stream(seed, axis, name, w.shape))
        d = torch.randn(w.shape, generator=gen, dtype=torch.float32).to(w.device, w.dtype)
        dims = tuple(range(1, w.dim()))
        norm = torch.linalg.vector_norm
        scale = norm(w, dim=dims, keepdim=True) / (norm(d, dim=dims, keepdim=True) + 1e-10)
        out.append(d * scale)
    return out


def _walk(
    net: nn.Module,
    data: TensorData,
    settings: LandscapeSettings,
    points: Sequence[tuple[float, ...]],
    place: Callable[[list[Tensor], tuple[float, ...]], None],
    progress: Progress | None,
    cancel: CancelFlag | None,
) -> list[tuple[float, float]]:
    """(loss, accuracy) at each point, after `place` has set the weights for it. The
    weights are restored bit for bit afterwards."""
    check_fits(net, data, "loss landscape")
    x, y = model_inputs(net, data, "train", train_subset(data, settings.images, settings.seed))
    params = list(net.parameters())
    with torch.no_grad():
        saved = [p.detach().clone() for p in params]
    results = []
    try:
        with eval_mode(net):
            for k, point in enumerate(points):
                check_cancel(cancel, "the loss landscape", k, len(points))
                place(params, point)
                results.append(evaluate(net, x, y))
                report(
                    progress,
                    (k + 1) / len(points),
                    f"loss landscape: {k + 1} of {len(points)} points",
                )
    finally:
        with torch.no_grad():
            torch._foreach_copy_(params, saved)
    return results


def _around(saved: list[Tensor], directions: list[list[Tensor]]):
    """Places the weights at saved + sum(c_i * d_i); a zero coefficient adds nothing, so
    the centre is exactly the trained net."""

    def place(params: list[Tensor], coeffs: tuple[float, ...]) -> None:
        torch._foreach_copy_(params, saved)
        for c, d in zip(coeffs, directions, strict=True):
            if c != 0:
                torch._foreach_add_(params, d, alpha=c)

    return place


def _slice(net, data, settings, points, axes, progress, cancel) -> list[tuple[float, float]]:
    with torch.no_grad():
        saved = [p.detach().clone() for p in net.parameters()]
        dirs = [random_direction(net, settings.seed, axis) for axis in range(axes)]
    return _walk(net, data, settings, points, _around(saved, dirs), progress, cancel)


def slice_1d(
    net: nn.Module,
    data: TensorData,
    settings: LandscapeSettings | None = None,
    *,
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
) -> Slice1D:
    """The loss along one filter-normalised random direction through the trained weights.

    Raises:
        InsideError: the data do not fit the net.
        Cancelled: `cancel` was set (checked before each point).
    """
    s = settings or LandscapeSettings()
    out = _slice(net, data, s, [(a,) for a in s.alphas], 1, progress, cancel)
    return Slice1D(_name(net), s.alphas, *_columns(out), images=_images(data, s))


def slice_2d(
    net: nn.Module,
    data: TensorData,
    settings: LandscapeSettings | None = None,
    *,
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
) -> Slice2D:
    """The loss on the plane of two filter-normalised random directions through the
    trained weights, on a grid x grid mesh (Li et al. 2018's contour plots).

    Raises:
        InsideError: the data do not fit the net.
        Cancelled: `cancel` was set (checked before each point).
    """
    s = settings or LandscapeSettings()
    a = s.alphas
    out = _slice(net, data, s, [(ai, bj) for bj in a for ai in a], 2, progress, cancel)
    losses, accuracies = _columns(out)
    n = len(a)
    rows = [tuple(losses[j * n : (j + 1) * n]) for j in range(n)]
    acc_rows = [tuple(accuracies[j * n : (j + 1) * n]) for j in range(n)]
    return Slice2D(_name(net), a, a, tuple(rows), tuple(acc_rows), images=_images(data, s))


def interpolation(
    start: nn.Module,
    end: nn.Module,
    data: TensorData,
    settings: LandscapeSettings = INTERPOLATION,
    *,
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
) -> Slice1D:
    """The loss on the straight line (1 - alpha) * start + alpha * end, evaluated on
    `end` (its weights are restored afterwards). BatchNorm's running statistics move along
    the line too, so alpha = 0 is exactly the `start` net and alpha = 1 the `end` net.

    Raises:
        InsideError: the two nets do not have the same parameters, or the data do not fit.
        Cancelled: `cancel` was set (checked before each point).
    """
    ends = _floating_state(end)
    starts = _matching_state(start, ends)
    targets = list(ends.values())
    first = [starts[k] for k in ends]
    with torch.no_grad():
        last = [t.detach().clone() for t in targets]

    def place(params: list[Tensor], point: tuple[float, ...]) -> None:
        torch._foreach_copy_(targets, torch._foreach_lerp(first, last, point[0]))

    try:
        points = [(a,) for a in settings.alphas]
        out = _walk(end, data, settings, points, place, progress, cancel)
    finally:  # _walk puts the parameters back; this puts the running statistics back too
        with torch.no_grad():
            torch._foreach_copy_(targets, last)
    return Slice1D(_name(end), settings.alphas, *_columns(out), images=_images(data, settings))


def _floating_state(net: nn.Module) -> dict[str, Tensor]:
    """Parameters and floating-point buffers, by name: what the interpolation moves."""
    state = dict(net.named_parameters())
    state.update({k: b for k, b in net.named_buffers() if b.is_floating_point()})
    return state


def _matching_state(start: nn.Module, ends: dict[str, Tensor]) -> dict[str, Tensor]:
    starts = _floating_state(start)
    if starts.keys() != ends.keys() or any(starts[k].shape != ends[k].shape for k in ends):
        raise InsideError(
            "the initial and the final weights belong to different networks",
            where="interpolation",
            fix="take both from one run",
        )
    return {k: t.detach().to(ends[k].device, ends[k].dtype) for k, t in starts.items()}


def _name(net: nn.Module) -> str:
    spec = getattr(net, "spec", None)
    return spec.name if spec is not None else type(net).__name__


def _images(data: TensorData, s: LandscapeSettings) -> int:
    return min(s.images, len(data.y_train))


def _columns(out: list[tuple[float, float]]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return tuple(r[0] for r in out), tuple(r[1] for r in out)


def compare(
    arms: Mapping[str, nn.Module],
    data: TensorData,
    settings: LandscapeSettings | None = None,
    *,
    dims: int = 2,
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
) -> dict[str, Slice1D | Slice2D]:
    """One slice per arm (a plain net and its residual twin) on one grid, the same images
    and the same seed, so that parameters the twins share get the same raw directions.

    Raises:
        InsideError: `dims` is not 1 or 2, or the data do not fit a net.
        Cancelled: `cancel` was set.
    """
    checks.whole(dims, "the number of directions", 1, 2, where="loss landscape", error=InsideError)
    fn = slice_2d if dims == 2 else slice_1d
    out = {}
    for k, (name, net) in enumerate(arms.items()):
        inner = scaled_progress(progress, k / len(arms), (k + 1) / len(arms))
        out[name] = fn(net, data, settings, progress=inner, cancel=cancel)
    return out
