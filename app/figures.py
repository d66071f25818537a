"""Pure functions from run data to plotly figures, sized for a classroom projector.

No streamlit here: every figure is a plain `go.Figure` that the views draw and the tests
inspect. Long runs are downsampled so a figure stays light in the browser.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from app.i18n import N_, _, number
from app.markers import add_events, add_floor_marks, collect_events, floor_of
from app.style import (
    BANDS,
    DASHES,
    GREY,
    PLAIN,
    RESIDUAL,
    SYMBOLS,
    TICK_SIZE,
    Z_MAX,
    Z_MIN,
    arm_colours,
    band_colorscale,
    band_levels,
    family_of_name,
    new_figure,
    positive,
    shades,
    style,
    thin,
    waiting,
)
from core.telemetry import Snapshot, StepRecord

if TYPE_CHECKING:  # core.analysis pulls in the trainer; figures only read its records
    from core.analysis import GradFlow, SweepPoint


def figure_bytes(fig: go.Figure) -> int:
    """Size in bytes of the JSON the browser receives for `fig`."""
    return len(fig.to_json().encode("utf-8"))


# --- 1. training curves ------------------------------------------------------------------

_METRICS = {  # metric -> (title, y-axis title, scale, hover format)
    "loss": (N_("Loss"), N_("loss (cross-entropy, nats)"), 1.0, ".4f"),
    "accuracy": (N_("Accuracy"), N_("accuracy (%)"), 100.0, ".1f"),
}


def curves_figure(
    snapshots: dict[str, Snapshot],
    metric: str = "loss",
    *,
    log_y: bool = False,
    max_points: int = 400,
    height: int = 580,
) -> go.Figure:
    """Training curve (solid) and validation points (dashed, markers) of every arm.

    Args:
        snapshots: arm name -> snapshot; all arms share the axes, so twins overlay.
        metric: "loss" or "accuracy" (shown in %).
        log_y: a log loss axis, to see late progress.
        max_points: training points per arm at most (means of consecutive steps).
        height: in pixels (the live panel's are shorter, to fit a projector's screen).
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be 'loss' or 'accuracy', got {metric!r}")
    title, y_title, scale, fmt = _METRICS[metric]
    title, y_title = _(title), _(y_title)
    if not any(s.steps or s.evals for s in snapshots.values()):
        return waiting(title)
    fig = new_figure()
    for arm, (colour, family) in arm_colours(snapshots).items():
        snap = snapshots[arm]
        _add_curve(fig, arm, snap.downsample(max_points), metric, scale, fmt, colour)
        _add_validation(fig, arm, snap, metric, scale, fmt, colour, family, max_points)
    add_events(fig, collect_events(snapshots), len(snapshots))
    fig.update_xaxes(title_text=_("step (optimizer steps)"), rangemode="tozero")
    fig.update_yaxes(title_text=y_title + (_(" (log scale)") if log_y else ""))
    if log_y:
        fig.update_yaxes(type="log")
    fig.update_layout(hovermode="x unified", legend={"groupclick": "toggleitem"})
    return style(fig, title, height=height)


def _add_curve(fig, arm, snap: Snapshot, metric, scale, fmt, colour) -> None:
    if not snap.steps:
        return
    fig.add_trace(
        go.Scatter(
            x=snap.column("step").astype(np.int32),  # whole numbers: shorter to send
            y=(snap.column(metric) * scale).astype(np.float32),
            mode="lines",
            name=_("{arm} · train").format(arm=arm),
            legendgroup=arm,
            line={"color": colour, "width": 3},
            hovertemplate=f"%{{y:{fmt}}}",
        )
    )


def _add_validation(fig, arm, snap, metric, scale, fmt, colour, family, max_points) -> None:
    evals = thin(snap.evals, max_points)
    if not evals:
        return
    fig.add_trace(
        go.Scatter(
            x=[e.step for e in evals],
            y=[getattr(e, metric) * scale for e in evals],
            mode="lines+markers",
            name=_("{arm} · validation").format(arm=arm),
            legendgroup=arm,
            line={"color": colour, "width": 2, "dash": "dash"},
            marker={"color": colour, "size": 10, "symbol": SYMBOLS[family]},
            hovertemplate=f"%{{y:{fmt}}}",
        )
    )


# --- 2. gradient norm over depth ---------------------------------------------------------


def _record_at(snapshot: Snapshot, step: int | None) -> StepRecord:
    """The latest record, or the last one logged at or before `step` (else the first)."""
    if step is None:
        return snapshot.last
    before = [r for r in snapshot.steps if r.step <= step]
    return before[-1] if before else snapshot.steps[0]


def grad_depth_figure(
    snapshots: dict[str, Snapshot], *, step: int | None = None, height: int = 580
) -> go.Figure:
    """Per-layer gradient L2 norm against depth (input left), one line per arm.

    Arms with the same layers share a layer axis; arms of different depth (20 and 56
    layers) share a relative-depth axis instead (0 = input side, 1 = output side), as in
    the gradient flow at init, so no net's layers land in the middle of another's.

    Args:
        snapshots: arm name -> snapshot.
        step: the logged step to show (the last one at or before it); None: the latest.
    """
    title = _("Gradient norm per layer")
    live = {arm: s for arm, s in snapshots.items() if s.steps}
    if not live:
        return waiting(title)
    relative = len({s.layers for s in live.values()}) > 1
    records = {arm: _record_at(snap, step) for arm, snap in live.items()}
    floor = floor_of(*(r.grad_norms for r in records.values()))
    fig = new_figure()
    for arm, (colour, family) in arm_colours(live).items():
        snap, record = live[arm], records[arm]
        n = len(snap.layers)
        x = (np.linspace(0.0, 1.0, n) if n > 1 else [0.0]) if relative else list(snap.layers)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=positive(record.grad_norms),
                mode="lines+markers",
                name=arm,
                line={"color": colour, "width": 3},
                marker={"color": colour, "size": 9, "symbol": SYMBOLS[family]},
                hovertext=list(snap.layers),
                hovertemplate=_("{arm}, step {step}").format(arm=arm, step=number(record.step))
                + "<br>%{hovertext}: %{y:.2e}<extra></extra>",
            )
        )
        add_floor_marks(
            fig, x, record.grad_norms, name=arm, colour=colour, labels=snap.layers, floor=floor
        )
    shown_steps = {r.step for r in records.values()}
    if relative:
        fig.update_xaxes(title_text=_("relative depth (0 = input side, 1 = output side)"))
    else:
        layers = next(iter(live.values())).layers
        fig.update_xaxes(
            title_text=_("layer (input → output)"),
            type="category",
            categoryorder="array",
            categoryarray=list(layers),
        )
    fig.update_yaxes(
        title_text=_("gradient L2 norm (log scale)"), type="log", exponentformat="power"
    )
    return style(fig, _title_at(title, shown_steps), height=height)


def _title_at(title: str, steps: set[int]) -> str:
    """'Gradient norm per layer at step 1,200', or 'at the chosen step' when arms differ."""
    if len(steps) == 1:
        return _("{title} at step {step}").format(title=title, step=number(next(iter(steps))))
    return _("{title} at the chosen step").format(title=title)


# --- 3. gradient heatmap over depth and time ---------------------------------------------


def grad_heatmap(snapshot: Snapshot, *, max_points: int = 200) -> go.Figure:
    """Gradient norm of every layer (rows, input at the bottom) at every logged step
    (columns), coloured by fixed bands so runs can be compared by eye.

    Args:
        snapshot: one arm's log.
        max_points: columns at most (each the mean of consecutive steps).
    """
    title = _("Gradient norm by layer and step")
    if not snapshot.steps or not snapshot.layers:
        return waiting(title)
    snap = snapshot.downsample(max_points)
    norms = snap.matrix("grad_norms").T  # (layers, steps)
    z, per = band_levels(norms)
    fig = new_figure(
        go.Heatmap(
            z=z,
            x=snap.column("step"),
            y=list(snap.layers),
            customdata=norms.astype(np.float32),
            zmin=Z_MIN * per,
            zmax=Z_MAX * per,
            zauto=False,
            colorscale=band_colorscale(),
            colorbar={
                "title": {"text": _("gradient<br>L2 norm"), "font": {"size": TICK_SIZE}},
                "tickvals": [(lo + hi) / 2 * per for _n, lo, hi, _c in BANDS],
                "ticktext": [_(name) for name, *__ in BANDS],
                "tickfont": {"size": TICK_SIZE},
            },
            hovertemplate=_("%{y}, step %{x:,}<br>norm %{customdata:.2e}") + "<extra></extra>",
            name=_("gradient norm"),
        )
    )
    add_events(fig, collect_events({"run": snapshot}), 1)
    fig.update_xaxes(title_text=_("step (optimizer steps)"))
    fig.update_yaxes(
        title_text=_("layer (input at the bottom)"),
        type="category",
        categoryorder="array",
        categoryarray=list(snap.layers),
    )
    fig.update_layout(showlegend=False)
    return style(fig, title, height=max(480, 160 + 14 * len(snap.layers)))


# --- 5. gradient flow at init ------------------------------------------------------------


def grad_flow_figure(flows: list[GradFlow]) -> go.Figure:
    """Per-layer gradient norm at initialisation against relative depth (0 = input side,
    1 = output side), so nets of different depth share the axis. Plain nets in oranges,
    residual nets in blues, deeper nets darker."""
    title = _("Gradient flow at initialisation")
    if not flows:
        return waiting(title, _("Run the experiment to see the gradient flow"))
    colours = _flow_colours(flows)
    floor = floor_of(*(f.norms for f in flows))
    fig = go.Figure()
    for flow, (colour, family) in zip(flows, colours, strict=True):
        n = len(flow.norms)
        fig.add_trace(
            go.Scatter(
                x=np.linspace(0.0, 1.0, n) if n > 1 else [0.0],
                y=positive(flow.norms),
                mode="lines+markers",
                name=flow.name,
                line={"color": colour, "width": 3},
                marker={"color": colour, "size": 7, "symbol": SYMBOLS[family]},
                hovertext=list(flow.layers),
                hovertemplate=f"{flow.name}<br>%{{hovertext}}: %{{y:.2e}}<extra></extra>",
            )
        )
        add_floor_marks(
            fig,
            list(fig.data[-1].x),
            flow.norms,
            name=flow.name,
            colour=colour,
            labels=flow.layers,
            floor=floor,
        )
    fig.update_xaxes(
        title_text=_("relative depth (0 = input side, 1 = output side)"), range=[-0.02, 1.02]
    )
    fig.update_yaxes(
        title_text=_("gradient L2 norm (log scale)"), type="log", exponentformat="power"
    )
    return style(fig, title)


def _flow_colours(flows: list[GradFlow]) -> list[tuple[str, str]]:
    """Family by name, shade by depth rank within the family (deeper = darker)."""
    families = [family_of_name(f.name) for f in flows]
    out: list[tuple[str, str]] = [("", "")] * len(flows)
    for family in set(families):
        members = sorted(
            (i for i, f in enumerate(families) if f == family), key=lambda i: len(flows[i].norms)
        )
        for i, colour in zip(members, shades(family, len(members)), strict=True):
            out[i] = (colour, family)
    return out


# --- 6. depth sweep ----------------------------------------------------------------------


def variant_name(point: SweepPoint) -> str:
    """'residual · BN · relu', 'plain · no BN · sigmoid'."""
    kind = _("residual") if point.residual else _("plain")
    return f"{kind} · {_('BN') if point.batch_norm else _('no BN')} · {point.activation}"


def sweep_figure(points: list[SweepPoint]) -> go.Figure:
    """First-layer over last-block gradient norm at init against depth, one line per
    (residual, batch norm, activation) variant. Far below 1: the early layers starve."""
    title = _("Does the gradient reach the first layer?")
    if not points:
        return waiting(title, _("Run the sweep to see how depth changes the gradient"))
    variants: dict[tuple[bool, bool, str], list[SweepPoint]] = {}
    for p in points:
        variants.setdefault((p.residual, p.batch_norm, p.activation), []).append(p)
    activations = sorted({p.activation for p in points})
    fig = go.Figure()
    for family, residual in ((PLAIN, False), (RESIDUAL, True)):
        keys = sorted(k for k in variants if k[0] == residual)
        for key, colour in zip(keys, shades(family, len(keys)) if keys else [], strict=True):
            group = sorted(variants[key], key=lambda p: p.depth)
            fig.add_trace(
                go.Scatter(
                    x=[p.depth for p in group],
                    y=positive(p.flow.first_to_last for p in group),
                    mode="lines+markers",
                    name=variant_name(group[0]),
                    line={"color": colour, "width": 3, "dash": _dash(key[2], activations)},
                    marker={"color": colour, "size": 11, "symbol": SYMBOLS[family]},
                    hovertemplate=_("depth %{x}: ratio %{y:.2e}")
                    + "<extra>%{fullData.name}</extra>",
                )
            )
    fig.add_hline(y=1, line={"color": GREY, "width": 1.5, "dash": "dot"}, name=_("ratio 1"))
    depths = sorted({p.depth for p in points})
    fig.update_xaxes(title_text=_("depth (weight layers)"), tickvals=depths)
    fig.update_yaxes(
        title_text=_("first / last gradient norm (log scale)"), type="log", exponentformat="power"
    )
    return style(fig, title)


def _dash(activation: str, activations: list[str]) -> str:
    return DASHES[activations.index(activation) % len(DASHES)]
