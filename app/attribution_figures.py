"""Pure functions for the Explain page's figures: attribution maps as one plotly grid (every
network on the same images and the same colour scale) and the sanity check's curves. The
tables and files are in `app.attribution_tables`. No streamlit here.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from app.i18n import _
from app.style import FONT_SIZE, GREY, TICK_SIZE, style

if TYPE_CHECKING:  # only their fields are read; the view imports the real modules
    from core.attribution import AttributionResult
    from core.attribution_quality import SanityReport

# Okabe-Ito blue for negative, vermillion for positive; zero is see-through, so the image
# shows where a map has nothing to say.
SIGNED_SCALE = [
    [0.0, "rgba(0,114,178,0.95)"],
    [0.25, "rgba(86,180,233,0.7)"],
    [0.5, "rgba(255,255,255,0)"],
    [0.75, "rgba(230,159,0,0.7)"],
    [1.0, "rgba(213,94,0,0.95)"],
]
UNSIGNED_SCALE = [
    [0.0, "rgba(240,228,66,0)"],
    [0.2, "rgba(240,228,66,0.35)"],
    [0.6, "rgba(230,159,0,0.75)"],
    [1.0, "rgba(213,94,0,0.95)"],
]
# The sanity check's lines: Okabe-Ito, the control in grey.
METHOD_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
_XY = "<br>x %{x}, y %{y}<extra></extra>"  # an image's hover, after its name
MARKERS = ("circle", "circle-open")  # all pixels, non-black pixels only
CELL_PX = 210  # height of one row of the grid


def as_array(x) -> np.ndarray:
    """A tensor or array-like as a numpy array (CPU)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


# --- the grid ----------------------------------------------------------------------------


def colour_range(maps: Sequence[np.ndarray], *, per_image: bool = False):
    """(low, high) per image, shared by every network: symmetric around 0 when any map
    has a negative value, else from 0 to the largest value.

    Args:
        maps: one (N, H, W) array per network.
        per_image: each image (row) gets its own range; else one range for all.

    Returns:
        Two (N,) arrays, and whether the scale is signed.
    """
    stack = np.stack([as_array(m).astype(np.float64) for m in maps])  # (nets, N, H, W)
    stack = np.where(np.isfinite(stack), stack, 0.0)  # a diverged net's NaN draws as 0
    signed = bool((stack < 0).any())
    size = np.abs(stack)
    axes = (0, 2, 3) if per_image else (0, 1, 2, 3)
    high = size.max(axis=axes) if stack.size else np.zeros(0)
    high = np.broadcast_to(high, (stack.shape[1],)).copy()
    high[~(high > 0)] = 1e-12  # a flat map: any range, as long as it is not empty
    return (-high if signed else np.zeros_like(high)), high, signed


def _rgb(image: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W, 3) uint8; one channel is repeated as grey."""
    x = np.clip(np.nan_to_num(image, nan=0.0), 0.0, 1.0)
    x = np.repeat(x, 3, axis=0) if x.shape[0] == 1 else x[:3]
    return (x.transpose(1, 2, 0) * 255).round().astype(np.uint8)


def _backdrop(rgb: np.ndarray) -> str:
    """The image in light grey as a PNG data URI, to lie under a heatmap.

    The grey is the image's first principal component of colour, stretched: plain
    luminance can make a magenta shape on a green ground vanish (equal brightness).
    Upscaled by repetition, so the browser's smoothing keeps the pixels square.
    """
    pixels = rgb.reshape(-1, 3).astype(np.float64)
    centred = pixels - pixels.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)  # (3, 3): colour directions
    grey = (centred @ vt[0]).reshape(rgb.shape[:2])
    span = grey.max() - grey.min()
    grey = (grey - grey.min()) / span if span > 1e-9 else np.full_like(grey, 0.5)
    light = (105 + 130 * grey).round().astype(np.uint8)  # light, so the colours read
    scale = max(1, -(-128 // min(light.shape)))  # at least 128 px on the short side
    light = np.kron(light, np.ones((scale, scale), dtype=np.uint8))
    buf = io.BytesIO()
    Image.fromarray(light).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def class_name(classes: Sequence[str], c: int) -> str:
    return classes[c] if 0 <= c < len(classes) else _("class {c}").format(c=c)


def attribution_grid(
    images,
    results_by_net: Mapping[str, AttributionResult],
    classes: Sequence[str],
    *,
    labels=None,
    indices=None,
    per_image: bool = False,
) -> go.Figure:
    """One row per image: the image, then each network's map laid over it in grey.

    Every map uses one colour scale, shared by all networks (and, unless `per_image`,
    by all images): signed maps symmetric around 0 (blue negative, orange positive),
    unsigned ones from 0 to the largest value. See-through at 0.

    Args:
        images: (N, C, H, W) in [0, 1].
        results_by_net: network name -> its result on these images, in column order.
        classes: class names.
        labels: (N,) true classes, to mark predictions right or wrong.
        indices: (N,) where the images sit in the validation set, for the titles.
        per_image: each row its own range (still shared by the networks); no colour bar.
    """
    x, maps = _checked(images, results_by_net)
    nets = list(maps)
    n, _c, h, w = x.shape
    indices = np.arange(n) if indices is None else as_array(indices).reshape(-1)
    labels = None if labels is None else as_array(labels).reshape(-1)
    low, high, signed = colour_range(list(maps.values()), per_image=per_image)
    cols = 1 + len(nets)
    fig = make_subplots(
        rows=n,
        cols=cols,
        subplot_titles=_titles(results_by_net, classes, labels, indices),
        horizontal_spacing=0.02,
        vertical_spacing=min(0.3 / max(n, 1), 0.08),
    )
    backdrops = []
    for i in range(n):
        rgb = _rgb(x[i])
        shown = _("image {index}").format(index=indices[i])
        fig.add_trace(go.Image(z=rgb, name=shown, hovertemplate=shown + _XY), i + 1, 1)
        uri = _backdrop(rgb)
        for j, net in enumerate(nets):
            heat = _heatmap(maps[net][i], low[i], high[i], signed, net, indices[i])
            heat.showscale = not per_image and i == 0 and j == len(nets) - 1
            fig.add_trace(heat, row=i + 1, col=j + 2)
            backdrops.append(_under(uri, i * cols + j + 2, h, w))  # axes count row by row
    fig.update_layout(images=backdrops)  # at once: one by one is quadratic in plotly
    _square_cells(fig, n * cols, h, w)
    style(fig, next(iter(results_by_net.values())).request.label, height=120 + CELL_PX * n)
    fig.update_annotations(font={"size": TICK_SIZE - 2})
    fig.update_layout(
        margin={"l": 20, "r": 20, "t": 90, "b": 20},
        plot_bgcolor="white",
        width=None,
        showlegend=False,
    )
    return fig


def _checked(images, results_by_net) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The images (N, C, H, W) and each network's maps (N, H, W) as arrays that fit."""
    x = as_array(images).astype(np.float64)
    if x.ndim != 4 or not results_by_net:
        raise ValueError("the grid needs images (N, C, H, W) and at least one network's maps")
    n, _, h, w = x.shape
    maps = {net: as_array(r.maps).astype(np.float32) for net, r in results_by_net.items()}
    for net, m in maps.items():
        if m.shape != (n, h, w):
            raise ValueError(f"{net}'s maps are {m.shape}, but the images are {n}x{h}x{w}")
    return x, maps


def _heatmap(z: np.ndarray, low: float, high: float, signed: bool, net: str, index) -> go.Heatmap:
    """Network `net`'s map of image `index` on its colour range, see-through at 0."""
    return go.Heatmap(
        z=z,
        zmin=float(low),
        zmax=float(high),
        zauto=False,
        colorscale=SIGNED_SCALE if signed else UNSIGNED_SCALE,
        colorbar=_colorbar(signed),
        name=f"{net} · " + _("image {index}").format(index=index),
        hovertemplate=f"{net}, "
        + _("image {index}").format(index=index)
        + "<br>x %{x}, y %{y}: %{z:.3g}<extra></extra>",
    )


def _under(uri: str, k: int, h: int, w: int) -> dict:
    """The grey image as a layout image below cell `k`'s heatmap (plotly's axes x{k}, y{k})."""
    return {
        "source": uri,
        "xref": f"x{k}",
        "yref": f"y{k}",
        "x": -0.5,
        "y": -0.5,
        "sizex": w,
        "sizey": h,
        "xanchor": "left",
        "yanchor": "top",
        "sizing": "stretch",
        "layer": "below",
    }


def _square_cells(fig: go.Figure, cells: int, h: int, w: int) -> None:
    """Hidden axes over exactly the pixels, image rows downwards, square pixels everywhere."""
    fig.update_xaxes(visible=False, range=[-0.5, w - 0.5], constrain="domain")
    fig.update_yaxes(visible=False, range=[h - 0.5, -0.5], constrain="domain")
    for k in range(1, cells + 1):
        fig.layout[f"yaxis{k if k > 1 else ''}"].scaleanchor = f"x{k if k > 1 else ''}"


def _colorbar(signed: bool) -> dict:
    text = _("attribution<br>(− blue, + orange)") if signed else _("attribution")
    return {"title": {"text": text, "font": {"size": TICK_SIZE}}, "tickfont": {"size": TICK_SIZE}}


def _titles(results_by_net, classes, labels, indices) -> list[str]:
    """Per row: 'image 12 · true: circle', then per net 'ResNet-8: circle 92% ✓'."""
    titles = []
    nets = list(results_by_net.items())
    for i, idx in enumerate(indices):
        truth = f" · {class_name(classes, int(labels[i]))}" if labels is not None else ""
        titles.append(_("image {index}").format(index=idx) + truth)
        for net, r in nets:
            p = as_array(r.probabilities)[i]
            pred, target = int(p.argmax()), int(as_array(r.targets)[i])
            mark = "" if labels is None else (" ✓" if pred == int(labels[i]) else " ✗")
            text = f"{net}: {class_name(classes, pred)} {p[pred]:.0%}{mark}"
            if target != pred:
                text += "<br>" + _("map of {cls}").format(cls=class_name(classes, target))
            titles.append(text)
    return titles


# --- the sanity check --------------------------------------------------------------------


def sanity_figure(report: SanityReport, *, title: str | None = None) -> go.Figure:
    """Rank correlation of each method's maps with the original ones as the weights are
    randomised from the head down to the stem (Adebayo et al. 2018). A method that stays
    above the dashed threshold does not depend on the model. Where some pixels are black,
    a long-dashed line per method scores the non-black pixels alone (issue 10)."""
    fig = go.Figure()
    for trace in _sanity_traces(report):
        fig.add_trace(trace)
    fig.add_hline(
        y=report.threshold,
        line={"color": GREY, "width": 1.5, "dash": "dash"},
        annotation_text=_("threshold {threshold:g}").format(threshold=report.threshold),
        annotation_position="top right",
        annotation_font={"size": TICK_SIZE - 2, "color": GREY},
    )
    lows = [min(t.y) for t in fig.data if len(t.y)]
    fig.update_xaxes(
        title_text=_("random weights down to (from the output)"),
        type="category",
        categoryorder="array",
        categoryarray=list(report.stages),
    )
    fig.update_yaxes(
        title_text=_("rank correlation with the original"),
        range=[min([-0.1, *lows]) - 0.05, 1.05],
    )
    style(fig, _("Sanity check") if title is None else title)
    fig.update_layout(font={"size": FONT_SIZE}, hovermode="closest")
    return fig


def _sanity_traces(report: SanityReport) -> list[go.Scatter]:
    """A line per method (the control dotted grey); where the images have black pixels,
    a second, long-dashed line per method over the non-black pixels."""
    from core.attribution_quality import CONTROLS  # the control methods, drawn in grey

    traces, colours = [], iter(METHOD_COLOURS * 2)
    for curve in report.curves:
        control = curve.method in CONTROLS
        colour = GREY if control else next(colours)
        flag = not curve.depends_on_model and not control  # a control is meant to ignore it
        ignores = " ⚠ " + _("ignores the model") if flag else ""
        lines = [(curve.method + ignores, curve.correlation)]
        if report.black_share > 0 and not control and curve.correlation_nonzero:
            nonblack = _("{method} · non-black pixels").format(method=curve.method)
            lines.append((nonblack, curve.correlation_nonzero))
        for k, (name, values) in enumerate(lines):
            dash = "dot" if control else ("solid", "longdash")[k]
            traces.append(
                go.Scatter(
                    x=list(report.stages),
                    y=list(values),
                    mode="lines+markers",
                    name=name,
                    legendgroup=curve.method,
                    line={"color": colour, "width": 3 - k, "dash": dash},
                    marker={
                        "size": 9 - 2 * k,
                        "color": colour,
                        "symbol": ("circle", "circle-open")[k],
                    },
                    hovertemplate=f"{name}<br>%{{x}}: ρ = %{{y:.2f}}<extra></extra>",
                )
            )
    return traces
