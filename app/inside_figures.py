"""Pure functions for the Inside page's figures: the lesion study, the loss landscape (1D,
contour, surface, interpolation), the errors per class and the overfitting gap. Plain
nets in oranges, residual nets in blues (`app.style`); twins always on one scale.
No streamlit here; the CSV of each figure is in `app.inside_tables`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.i18n import fill, translate
from app.style import DASHES, FONT_SIZE, GREY, family_of_name, shades, style

if TYPE_CHECKING:  # only their fields are read
    from core.confusion import Confusion
    from core.landscape import Slice1D, Slice2D
    from core.lesion import LesionStudy
    from core.overfitting import Gap
    from core.telemetry import Snapshot

LOSS_CAP = 10.0  # the colour scale of a landscape stops here: far off, every net is "high"
LANDSCAPE_SCALE = "Viridis"
COUNT_SCALE = [[0.0, "#FFFFFF"], [1.0, "#0072B2"]]


def colours(names) -> dict[str, str]:
    """name -> colour: plain nets in oranges, residual in blues, spread within a family."""
    names = list(names)
    families = {n: family_of_name(n) for n in names}
    out = {}
    for family in dict.fromkeys(families.values()):
        mine = [n for n in names if families[n] == family]
        out.update(zip(mine, shades(family, len(mine)), strict=True))
    return out


# --- lesion study ------------------------------------------------------------------------


def lesion_figure(studies: Mapping[str, LesionStudy]) -> go.Figure:
    """Validation accuracy after deleting each block, a bar per block and net; each net's
    accuracy with every block in place as a dotted line. One 0-100 % axis."""
    fig, c = go.Figure(), colours(studies)
    for name, s in studies.items():
        x = [translate("block {block}").format(block=r.block) for r in s.removable]
        fig.add_bar(
            x=x,
            y=[a * 100 for a in s.single],
            name=name,
            marker_color=c[name],
            hovertemplate="%{x}: %{y:.1f} %<extra>" + name + "</extra>",
        )
        fig.add_hline(y=s.baseline * 100, line={"color": c[name], "dash": "dot", "width": 2})
    fig.update_layout(barmode="group")
    fig.update_yaxes(title=translate("validation accuracy (%)"), range=[0, 100])
    fig.update_xaxes(title=translate("block deleted (its shortcut kept)"))
    return style(fig, translate("Accuracy after deleting one block"))


def k_curve_figure(studies: Mapping[str, LesionStudy]) -> go.Figure:
    """Mean validation accuracy after deleting k random blocks, ± one standard deviation
    over the draws as a band; k = 0 is the intact net."""
    fig, c = go.Figure(), colours(studies)
    for name, s in studies.items():
        k, mean, std = np.array(s.ks), np.array(s.k_mean) * 100, np.array(s.k_std) * 100
        fig.add_scatter(
            x=np.concatenate([k, k[::-1]]),
            y=np.concatenate([mean + std, (mean - std)[::-1]]),
            fill="toself",
            fillcolor=c[name],
            opacity=0.2,
            line={"width": 0},
            hoverinfo="skip",
            showlegend=False,
        )
        fig.add_scatter(
            x=k, y=mean, mode="lines+markers", name=name, line={"color": c[name], "width": 3}
        )
    fig.update_yaxes(title=translate("validation accuracy (%)"), range=[0, 100])
    fig.update_xaxes(title=translate("blocks deleted at random (k)"), dtick=1)
    return style(fig, translate("Deleting k blocks: smooth decline or collapse"))


# --- loss landscape ----------------------------------------------------------------------


def slice_1d_figure(slices: Mapping[str, Slice1D], *, title: str = "", x: str = "") -> go.Figure:
    """Training loss along one direction (or the interpolation line), a line per net."""
    fig, c = go.Figure(), colours(slices)
    for k, (name, s) in enumerate(slices.items()):
        fig.add_scatter(
            x=list(s.alphas),
            y=list(s.losses),
            mode="lines+markers",
            name=name,
            line={"color": c[name], "width": 3, "dash": DASHES[k % len(DASHES)]},
        )
    fig.update_yaxes(title=translate("training loss (cross-entropy)"))
    fig.update_xaxes(title=x or translate("step along the direction (in filter norms)"))
    return style(fig, title or translate("Loss along a random direction"))


def loss_range(slices: Mapping[str, Slice2D]) -> tuple[float, float]:
    """(low, high) of the shared colour scale: from the lowest loss of any net to its
    highest, capped at LOSS_CAP (and always a little above low)."""
    z = np.concatenate([np.asarray(s.losses, dtype=float).ravel() for s in slices.values()])
    z = z[np.isfinite(z)]
    if z.size == 0:
        return 0.0, LOSS_CAP
    low = float(z.min())
    return low, max(low + 1e-6, min(float(z.max()), LOSS_CAP))


def contour_figure(slices: Mapping[str, Slice2D]) -> go.Figure:
    """A contour plot of the training loss per net, side by side, on one grid and one
    colour scale; the trained weights are at (0, 0)."""
    names = list(slices)
    low, high = loss_range(slices)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.08)
    for k, name in enumerate(names):
        s = slices[name]
        fig.add_contour(
            x=list(s.alphas),
            y=list(s.betas),
            z=[list(r) for r in s.losses],
            zmin=low,
            zmax=high,
            colorscale=LANDSCAPE_SCALE,
            contours={"start": low, "end": high, "size": (high - low) / 12},
            showscale=k == len(names) - 1,
            colorbar={"title": {"text": translate("loss")}},
            name=name,
            row=1,
            col=k + 1,
        )
        fig.add_scatter(
            x=[0],
            y=[0],
            mode="markers",
            marker={"symbol": "x", "size": 14, "color": "white"},
            name=translate("trained weights"),
            showlegend=k == 0,
            row=1,
            col=k + 1,
        )
    fig.update_xaxes(title=translate("direction 1"))
    fig.update_yaxes(title=translate("direction 2"))
    return style(fig, translate("Loss landscape (contours)"), height=620)


def surface_figure(slices: Mapping[str, Slice2D]) -> go.Figure:
    """The same losses as surfaces, side by side, on one colour scale and one z range."""
    names = list(slices)
    low, high = loss_range(slices)
    fig = make_subplots(
        rows=1,
        cols=len(names),
        specs=[[{"type": "surface"}] * len(names)],
        subplot_titles=names,
    )
    for k, name in enumerate(names):
        s = slices[name]
        fig.add_surface(
            x=list(s.alphas),
            y=list(s.betas),
            z=[list(r) for r in s.losses],
            cmin=low,
            cmax=high,
            colorscale=LANDSCAPE_SCALE,
            showscale=k == len(names) - 1,
            name=name,
            row=1,
            col=k + 1,
        )
    scene = {
        "xaxis": {"title": {"text": translate("dir. 1")}},
        "yaxis": {"title": {"text": translate("dir. 2")}},
        "zaxis": {"title": {"text": translate("loss")}, "range": [low, high]},
    }
    fig.update_layout(**{f"scene{'' if k == 0 else k + 1}": scene for k in range(len(names))})
    return style(fig, translate("Loss landscape (surface)"), height=620)


# --- errors per class --------------------------------------------------------------------


def confusion_figure(conf: Confusion, *, normalised: bool = False) -> go.Figure:
    """The confusion matrix of one net: rows true classes, columns predicted, each cell
    its count (or its share of the row)."""
    z = np.array(conf.rates if normalised else conf.counts, dtype=float)
    text = [[f"{v:.0%}" if normalised else f"{int(v)}" for v in row] for row in z]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(conf.classes),
            y=list(conf.classes),
            text=text,
            texttemplate="%{text}",
            colorscale=COUNT_SCALE,
            zmin=0,
            zmax=1 if normalised else max(1.0, float(z.max())),
            hovertemplate=translate("true %{y}, predicted %{x}: %{text}") + "<extra></extra>",
        )
    )
    fig.update_yaxes(title=translate("true class"), autorange="reversed", type="category")
    fig.update_xaxes(title=translate("predicted class"), type="category")
    if normalised:
        title = translate("{name}: confusion (share of each true class)").format(name=conf.name)
    else:
        title = translate("{name}: confusion (images)").format(name=conf.name)
    return style(fig, title, height=560)


def per_class_figure(confs: Mapping[str, Confusion]) -> go.Figure:
    """Accuracy on each class's validation images, a bar per class and net."""
    fig, c = go.Figure(), colours(confs)
    for name, conf in confs.items():
        acc = [None if a is None else a * 100 for a in conf.per_class]
        fig.add_bar(x=list(conf.classes), y=acc, name=name, marker_color=c[name])
    fig.update_layout(barmode="group")
    fig.update_yaxes(title=translate("accuracy on the class (%)"), range=[0, 100])
    fig.update_xaxes(title=translate("class"), type="category")
    return style(fig, translate("Accuracy per class"))


# --- overfitting -------------------------------------------------------------------------


def gap_figure(
    runs: Mapping[str, Mapping[str, tuple[Snapshot, Gap | None]]],
) -> go.Figure:
    """Training (thin) and validation (thick) accuracy of every net of every run, a panel
    per run; the gap at the last validation drawn as a grey bar with its size."""
    labels = list(runs)
    fig = make_subplots(rows=1, cols=max(1, len(labels)), subplot_titles=labels, shared_yaxes=True)
    c = colours({arm for arms in runs.values() for arm in arms})
    for col, label in enumerate(labels, start=1):
        for arm, (snap, g) in runs[label].items():
            _curves(fig, arm, snap, c[arm], col, first=col == 1)
            if g is not None:
                _gap_mark(fig, g, col)
    fig.update_yaxes(title=translate("accuracy (%)"), range=[0, 100], col=1)
    fig.update_xaxes(title=translate("step"))
    return style(fig, translate("Training vs validation accuracy: the gap"), height=600)


def _curves(fig, arm: str, snap: Snapshot, colour: str, col: int, *, first: bool) -> None:
    fig.add_scatter(
        x=snap.column("step"),
        y=snap.column("accuracy") * 100,
        mode="lines",
        name=translate("{arm}: training").format(arm=arm),
        line={"color": colour, "width": 1},
        opacity=0.6,
        showlegend=first,
        legendgroup=f"{arm}t",
        row=1,
        col=col,
    )
    fig.add_scatter(
        x=[e.step for e in snap.evals],
        y=[e.accuracy * 100 for e in snap.evals],
        mode="lines+markers",
        name=translate("{arm}: validation").format(arm=arm),
        line={"color": colour, "width": 4},
        showlegend=first,
        legendgroup=f"{arm}v",
        row=1,
        col=col,
    )


def _gap_mark(fig, g: Gap, col: int) -> None:
    fig.add_scatter(
        x=[g.step, g.step],
        y=[g.val * 100, g.train * 100],
        mode="lines",
        line={"color": GREY, "width": 8},
        opacity=0.5,
        showlegend=False,
        hovertemplate=fill("gap {gap:.1f} points", gap=g.gap * 100) + "<extra></extra>",
        row=1,
        col=col,
    )
    fig.add_annotation(
        x=g.step,
        y=(g.val + g.train) * 50,
        text=fill("gap {gap:+.1f} points", gap=g.gap * 100),
        showarrow=False,
        xanchor="right",
        font={"size": FONT_SIZE - 4, "color": GREY},
        row=1,
        col=col,
    )
