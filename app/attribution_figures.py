"""Pure functions for the Explain page: which images to explain, attribution maps as one
plotly grid (every network on the same images and the same colour scale), the sanity
check's curves, and the tables and files behind them. No streamlit here.
"""

from __future__ import annotations

import base64
import csv
import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from app.figures import FONT_SIZE, GREY, TICK_SIZE, style

if TYPE_CHECKING:  # only their fields are read; the view imports the real modules
    from core.attribution import AttributionResult
    from core.attribution_quality import LocalisationRow, SanityReport

# How to choose the images to explain: key -> what the page says.
PICKS = {
    "misclassified": "misclassified first",
    "class": "of one class",
    "random": "at random",
}

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
CELL_PX = 210  # height of one row of the grid


def _np(x) -> np.ndarray:
    """A tensor or array-like as a numpy array (CPU)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


# --- which images ------------------------------------------------------------------------


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
            raise ValueError("choosing images by class needs the class")
        return rng.permutation(np.flatnonzero(labels == cls))[:k]
    if how != "misclassified":
        raise ValueError(f"unknown way to pick images {how!r}; choose one of: {', '.join(PICKS)}")
    if probs is None:
        raise ValueError("picking misclassified images needs the networks' probabilities")
    p = _np(probs).astype(np.float64)
    p = p[None] if p.ndim == 2 else p  # (nets, N, classes)
    if p.ndim != 3 or p.shape[1] != n:
        raise ValueError(f"probabilities {p.shape} do not match {n} labels")
    wrong = (p.argmax(-1) != labels).sum(0)  # (N,): how many nets get it wrong
    true_p = p[:, np.arange(n), labels].mean(0)  # (N,): mean probability of the truth
    return np.lexsort((np.arange(n), true_p, -wrong))[:k]  # last key sorts first


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
    stack = np.stack([_np(m).astype(np.float64) for m in maps])  # (nets, N, H, W)
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


def _name(classes: Sequence[str], c: int) -> str:
    return classes[c] if 0 <= c < len(classes) else f"class {c}"


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
    x = _np(images).astype(np.float64)
    nets = list(results_by_net)
    if x.ndim != 4 or not nets:
        raise ValueError("the grid needs images (N, C, H, W) and at least one network's maps")
    n, _, h, w = x.shape
    maps = {net: _np(r.maps).astype(np.float32) for net, r in results_by_net.items()}
    for net, m in maps.items():
        if m.shape != (n, h, w):
            raise ValueError(f"{net}'s maps are {m.shape}, but the images are {n}x{h}x{w}")
    indices = np.arange(n) if indices is None else _np(indices).reshape(-1)
    labels = None if labels is None else _np(labels).reshape(-1)
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
        fig.add_trace(
            go.Image(
                z=rgb,
                name=f"image {indices[i]}",
                hovertemplate=f"image {indices[i]}<br>x %{{x}}, y %{{y}}<extra></extra>",
            ),
            row=i + 1,
            col=1,
        )
        uri = _backdrop(rgb)
        for j, net in enumerate(nets):
            k = i * cols + j + 2  # plotly numbers the axes row by row from 1
            fig.add_trace(
                go.Heatmap(
                    z=maps[net][i],
                    zmin=float(low[i]),
                    zmax=float(high[i]),
                    zauto=False,
                    colorscale=SIGNED_SCALE if signed else UNSIGNED_SCALE,
                    showscale=not per_image and i == 0 and j == len(nets) - 1,
                    colorbar=_colorbar(signed),
                    name=f"{net} · image {indices[i]}",
                    hovertemplate=f"{net}, image {indices[i]}<br>x %{{x}}, y %{{y}}: "
                    "%{z:.3g}<extra></extra>",
                ),
                row=i + 1,
                col=j + 2,
            )
            backdrops.append(
                {
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
            )
    fig.update_layout(images=backdrops)  # at once: one by one is quadratic in plotly
    fig.update_xaxes(visible=False, range=[-0.5, w - 0.5], constrain="domain")
    fig.update_yaxes(visible=False, range=[h - 0.5, -0.5], constrain="domain")
    for k in range(1, n * cols + 1):  # square pixels in every cell
        fig.layout[f"yaxis{k if k > 1 else ''}"].scaleanchor = f"x{k if k > 1 else ''}"
    first = next(iter(results_by_net.values()))
    style(fig, first.request.label, height=120 + CELL_PX * n)
    fig.update_annotations(font={"size": TICK_SIZE - 2})
    fig.update_layout(
        margin={"l": 20, "r": 20, "t": 90, "b": 20},
        plot_bgcolor="white",
        width=None,
        showlegend=False,
    )
    return fig


def _colorbar(signed: bool) -> dict:
    text = "attribution<br>(− blue, + orange)" if signed else "attribution"
    return {"title": {"text": text, "font": {"size": TICK_SIZE}}, "tickfont": {"size": TICK_SIZE}}


def _titles(results_by_net, classes, labels, indices) -> list[str]:
    """Per row: 'image 12 · true: circle', then per net 'ResNet-8: circle 92% ✓'."""
    titles = []
    nets = list(results_by_net.items())
    for i, idx in enumerate(indices):
        truth = f" · {_name(classes, int(labels[i]))}" if labels is not None else ""
        titles.append(f"image {idx}{truth}")
        for net, r in nets:
            p = _np(r.probabilities)[i]
            pred, target = int(p.argmax()), int(_np(r.targets)[i])
            mark = "" if labels is None else (" ✓" if pred == int(labels[i]) else " ✗")
            text = f"{net}: {_name(classes, pred)} {p[pred]:.0%}{mark}"
            if target != pred:
                text += f"<br>map of {_name(classes, target)}"
            titles.append(text)
    return titles


# --- tables ------------------------------------------------------------------------------


def top_k(probabilities, classes: Sequence[str], k: int = 3) -> str:
    """'circle 92% · square 6% · ring 1%' for one image's probabilities."""
    p = _np(probabilities).reshape(-1)
    order = np.argsort(-p, kind="stable")[:k]
    return " · ".join(f"{_name(classes, int(c))} {p[c]:.0%}" for c in order)


def probability_rows(
    results_by_net: Mapping[str, AttributionResult],
    classes: Sequence[str],
    *,
    labels=None,
    indices=None,
) -> list[dict]:
    """One row per image: its true class, and per network the top 3 predicted classes
    and the class the map explains."""
    first = next(iter(results_by_net.values()))
    n = len(first.probabilities)
    indices = np.arange(n) if indices is None else _np(indices).reshape(-1)
    rows = []
    for i in range(n):
        row = {"image": int(indices[i])}
        if labels is not None:
            row["true class"] = _name(classes, int(_np(labels).reshape(-1)[i]))
        for net, r in results_by_net.items():
            row[f"{net} · top 3"] = top_k(r.probabilities[i], classes)
            row[f"{net} · map explains"] = _name(classes, int(_np(r.targets)[i]))
        rows.append(row)
    return rows


def delta_rows(results_by_net: Mapping[str, AttributionResult], *, indices=None) -> list[dict]:
    """Integrated Gradients' completeness per image and network: the score change
    f(x) - f(baseline) that the map's sum should equal, the gap (Captum's delta), and the
    gap as a share of the change, which Sundararajan et al. (2017, sec. 3) want within 5%.
    Empty when no result has a delta."""
    with_delta = {net: r for net, r in results_by_net.items() if r.delta is not None}
    if not with_delta:
        return []
    n = len(next(iter(with_delta.values())).delta)
    indices = np.arange(n) if indices is None else _np(indices).reshape(-1)
    rows = []
    for i in range(n):
        row = {"image": int(indices[i])}
        for net, r in with_delta.items():
            delta = float(_np(r.delta)[i])
            change = float(_np(r.raw[i]).astype(np.float64).sum()) - delta  # delta = sum - change
            row[f"{net} · f(x) − f(baseline)"] = round(change, 4)
            row[f"{net} · delta"] = float(f"{delta:.3g}")
            row[f"{net} · gap %"] = round(relative_gap(delta, change) * 100, 1)
        rows.append(row)
    return rows


def relative_gap(delta: float, change: float) -> float:
    """|delta| as a share of |change| (0 when both vanish, inf when only the change does)."""
    if abs(change) < 1e-12:
        return 0.0 if abs(delta) < 1e-12 else math.inf
    return abs(delta) / abs(change)


def localisation_rows(rows: Sequence[LocalisationRow]) -> list[dict]:
    """One row per method; per network the share of positive attribution on the object
    and the pointing-game hit rate (in %), side by side; and the chance level (the
    objects' share of the pixels), which a map spread evenly would score."""
    models = list(dict.fromkeys(r.model for r in rows))
    out: dict[str, dict] = {}
    for r in rows:
        out.setdefault(r.method, {})[r.model] = r.score
    table = []
    for method, scores in out.items():
        row = {"method": method}
        for column, field in (("on object %", "share_inside"), ("pointing %", "hit_rate")):
            for model in models:  # the networks side by side under each measure
                score = scores.get(model)
                row[f"{column} · {model}"] = _percent(getattr(score, field, math.nan))
        row["chance %"] = _percent(next(iter(scores.values())).mask_area)
        table.append(row)
    return table


def _percent(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(100 * value, 1)


# --- files -------------------------------------------------------------------------------


def maps_npy(result: AttributionResult) -> bytes:
    """The maps as drawn, (N, H, W) float32, in NumPy's .npy format."""
    buf = io.BytesIO()
    np.save(buf, _np(result.maps).astype(np.float32))
    return buf.getvalue()


def maps_csv(
    results_by_net: Mapping[str, AttributionResult], classes: Sequence[str], *, indices=None
) -> str:
    """Every value of every map, one per line: network, image, class explained, row, col."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["network", "image", "class_explained", "row", "col", "value"])
    for net, r in results_by_net.items():
        maps = _np(r.maps).astype(np.float32)  # (N, H, W)
        n, h, w = maps.shape
        idx = np.arange(n) if indices is None else _np(indices).reshape(-1)
        rows, cols = np.divmod(np.arange(h * w), w)
        for i in range(n):
            name = _name(classes, int(_np(r.targets)[i]))
            out.writerows(
                (net, int(idx[i]), name, int(y), int(x), f"{v:.6g}")
                for y, x, v in zip(rows, cols, maps[i].reshape(-1), strict=True)
            )
    return buf.getvalue()


# --- the sanity check --------------------------------------------------------------------


def sanity_figure(report: SanityReport, *, title: str = "Sanity check") -> go.Figure:
    """Rank correlation of each method's maps with the original ones as the weights are
    randomised from the head down to the stem (Adebayo et al. 2018). A method that stays
    above the dashed threshold does not depend on the model."""
    from core.attribution_quality import CONTROLS  # the control methods, drawn in grey

    fig = go.Figure()
    colours = iter(METHOD_COLOURS * 2)
    for curve in report.curves:
        control = curve.method in CONTROLS
        colour = GREY if control else next(colours)
        flag = not curve.depends_on_model and not control  # a control is meant to ignore it
        name = curve.method + (" ⚠ ignores the model" if flag else "")
        fig.add_trace(
            go.Scatter(
                x=list(report.stages),
                y=list(curve.correlation),
                mode="lines+markers",
                name=name,
                line={"color": colour, "width": 3, "dash": "dot" if control else "solid"},
                marker={"size": 9, "color": colour},
                hovertemplate=f"{curve.method}<br>%{{x}}: ρ = %{{y:.2f}}<extra></extra>",
            )
        )
    fig.add_hline(
        y=report.threshold,
        line={"color": GREY, "width": 1.5, "dash": "dash"},
        annotation_text=f"threshold {report.threshold:g}",
        annotation_position="top right",
        annotation_font={"size": TICK_SIZE - 2, "color": GREY},
    )
    lows = [min(c.correlation) for c in report.curves if c.correlation]
    fig.update_xaxes(
        title_text="random weights down to (from the output)",
        type="category",
        categoryorder="array",
        categoryarray=list(report.stages),
    )
    fig.update_yaxes(
        title_text="rank correlation with the original",
        range=[min([-0.1, *lows]) - 0.05, 1.05],
    )
    style(fig, title)
    fig.update_layout(font={"size": FONT_SIZE}, hovermode="closest")
    return fig
