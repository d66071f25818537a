"""Pure functions from run data to plotly figures, sized for a classroom projector.

No streamlit here: every figure is a plain `go.Figure` that the views draw and the tests
inspect. Long runs are downsampled so a figure stays light in the browser.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from core.telemetry import Event, Snapshot, StepRecord

if TYPE_CHECKING:  # core.analysis pulls in the trainer; figures only read its records
    from core.analysis import GradFlow, SweepPoint

# --- look: big fonts, Okabe-Ito colours (safe for colour-blind viewers) ------------------

FONT_SIZE = 18
TITLE_SIZE = 24
TICK_SIZE = 16
WAITING = "Waiting for the first step…"

# Light -> dark anchors per family: plain nets in oranges, residual nets in blues.
PLAIN, RESIDUAL, OTHER = "plain", "residual", "other"
_FAMILY_SHADES = {
    PLAIN: ("#F3B45E", "#E69F00", "#D55E00", "#8F3F00"),
    RESIDUAL: ("#9FD3F2", "#56B4E9", "#0072B2", "#003E61"),
    OTHER: ("#9ADBC5", "#3FBF99", "#009E73", "#005C43"),
}
_MAIN_SHADE = 2 / 3  # position of the family's main colour among its anchors
_SYMBOLS = {PLAIN: "square", RESIDUAL: "circle", OTHER: "diamond"}
_DASHES = ("solid", "dash", "dot", "dashdot")
GREY = "#8C8C8C"

# Events drawn as vertical lines: kind -> (legend name, colour, dash).
EVENT_STYLES = {
    "skip": ("skip toggle", "#CC79A7", "dash"),
    "lr": ("learning-rate change", "#000000", "dot"),
}
MAX_EVENTS = 60  # newest kept; more would only be a smear of lines
MAX_LABEL = 28

# Gradient-norm bands, fixed so that two runs (or two classes) read the same colours.
# Edges in log10 of the L2 norm; the outer limits clip, so every norm lands in a band.
Z_MIN, Z_MAX = -6.0, 3.0
BANDS = (  # name, lower edge (log10), upper edge (log10), colour
    ("vanishing < 1e-4", Z_MIN, -4.0, "#1A1A1A"),
    ("weak 1e-4 – 1e-2", -4.0, -2.0, "#56B4E9"),
    ("healthy 1e-2 – 10", -2.0, 1.0, "#009E73"),
    ("exploding > 10", 1.0, Z_MAX, "#D55E00"),
)


def figure_bytes(fig: go.Figure) -> int:
    """Size in bytes of the JSON the browser receives for `fig`."""
    return len(fig.to_json().encode("utf-8"))


# --- shared helpers ----------------------------------------------------------------------


def style(fig: go.Figure, title: str, *, height: int = 580) -> go.Figure:
    fig.update_layout(
        template="plotly_white",
        title={"text": title, "font": {"size": TITLE_SIZE}, "x": 0.01, "xanchor": "left"},
        font={"size": FONT_SIZE},
        # Below the plot, so half-width charts keep their full width for the data.
        legend={
            "font": {"size": FONT_SIZE - 2},
            "orientation": "h",
            "x": 0,
            "xanchor": "left",
            "y": -0.22,
            "yanchor": "top",
        },
        hoverlabel={"font": {"size": FONT_SIZE - 2}},
        margin={"l": 90, "r": 30, "t": 80, "b": 150},
        height=height,
    )
    fig.update_xaxes(tickfont={"size": TICK_SIZE}, title_font={"size": FONT_SIZE})
    fig.update_yaxes(tickfont={"size": TICK_SIZE}, title_font={"size": FONT_SIZE})
    return fig


def _waiting(title: str, message: str = WAITING) -> go.Figure:
    """A valid, empty figure that says what it waits for."""
    fig = go.Figure()
    fig.add_annotation(
        text=message,
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        showarrow=False,
        font={"size": FONT_SIZE + 4, "color": GREY},
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return style(fig, title, height=360)


def _hex_to_rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def _blend(anchors: Sequence[str], t: float) -> str:
    """The colour at `t` (0 = first anchor, 1 = last) along a piecewise-linear ramp."""
    t = min(max(t, 0.0), 1.0) * (len(anchors) - 1)
    i = min(int(t), len(anchors) - 2)
    a, b = _hex_to_rgb(anchors[i]), _hex_to_rgb(anchors[i + 1])
    f = t - i
    return "#" + "".join(f"{round(x + (y - x) * f):02X}" for x, y in zip(a, b, strict=True))


def shades(family: str, n: int) -> list[str]:
    """`n` colours of one family, light to dark; one alone gets the family's main colour."""
    anchors = _FAMILY_SHADES[family]
    if n == 1:
        return [_blend(anchors, _MAIN_SHADE)]
    return [_blend(anchors, t) for t in np.linspace(0.2, 1.0, n)]


def family_of_name(name: str) -> str:
    """'Plain-20' -> plain, 'ResNet-20' or 'Dense residual MLP' -> residual, else other."""
    low = name.lower()
    if "plain" in low:
        return PLAIN
    if "resnet" in low or "residual" in low:
        return RESIDUAL
    return OTHER


def family_of_snapshot(arm: str, snapshot: Snapshot) -> str:
    """Residual when the arm's spec (in the log's meta) starts with a skip on, else plain;
    the arm's name decides when the log carries no spec."""
    try:
        blocks = json.loads(snapshot.meta["spec"])["blocks"]
    except (KeyError, TypeError, ValueError):
        return family_of_name(arm)
    return RESIDUAL if any(b.get("skip") is True for b in blocks) else PLAIN


def _arm_colours(snapshots: dict[str, Snapshot]) -> dict[str, tuple[str, str]]:
    """arm -> (colour, family), shades spread within each family in arm order."""
    families = {arm: family_of_snapshot(arm, snap) for arm, snap in snapshots.items()}
    out = {}
    for family in (PLAIN, RESIDUAL, OTHER):
        arms = [arm for arm, f in families.items() if f == family]
        for arm, colour in zip(arms, shades(family, len(arms)) if arms else [], strict=True):
            out[arm] = (colour, family)
    return out


def _positive(values: Iterable[float]) -> np.ndarray:
    """Values for a log axis: zeros, negatives and non-finite values become gaps (NaN)."""
    a = np.asarray(list(values), dtype=np.float64)
    return np.where(np.isfinite(a) & (a > 0), a, np.nan)


def _thin(items: Sequence, max_points: int) -> Sequence:
    """At most `max_points` items, evenly spaced, the last one always kept."""
    if len(items) <= max_points:
        return items
    idx = np.unique(np.linspace(len(items) - 1, 0, max_points).round().astype(int))
    return [items[i] for i in idx]


# --- event markers -----------------------------------------------------------------------


def _collect_events(snapshots: dict[str, Snapshot]) -> list[tuple[Event, list[str]]]:
    """Skip and lr events of all arms, one per (step, kind, detail), with the arms it hit."""
    seen: dict[tuple[int, str, str], list[str]] = {}
    for arm, snap in snapshots.items():
        for e in snap.events:
            if e.kind in EVENT_STYLES:
                seen.setdefault((e.step, e.kind, e.detail), []).append(arm)
    events = sorted(seen.items(), key=lambda kv: kv[0][0])[-MAX_EVENTS:]
    return [(Event(step, kind, detail), arms) for (step, kind, detail), arms in events]


def _short(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def _add_events(fig: go.Figure, events: list[tuple[Event, list[str]]], n_arms: int) -> None:
    """Each event as a labelled vertical line (white halo, so it shows on a heatmap too)
    and a hoverable marker at its top, on a hidden 0-1 axis laid over the plot."""
    shapes, notes = [], []
    for event, _ in events:
        _, colour, dash = EVENT_STYLES[event.kind]
        line = {"type": "line", "x0": event.step, "x1": event.step, "xref": "x"}
        line |= {"y0": 0, "y1": 1, "yref": "paper", "layer": "above"}
        shapes.append(line | {"name": "event-halo", "line": {"color": "white", "width": 6}})
        style = {"color": colour, "width": 2.5, "dash": dash}
        shapes.append(line | {"name": f"event:{event.kind}", "line": style})
        notes.append(  # reads downwards, just left of the line, on a light backing
            {
                "x": event.step,
                "y": 0.98,
                "xref": "x",
                "yref": "paper",
                "text": _short(event.detail),
                "name": f"event:{event.kind}",
                "textangle": -90,
                "xanchor": "right",
                "yanchor": "top",
                "showarrow": False,
                "bgcolor": "rgba(255,255,255,0.85)",
                "font": {"size": TICK_SIZE, "color": colour},
            }
        )
    # One assignment each: add_shape/add_annotation one by one is quadratic in plotly.
    fig.update_layout(
        shapes=[*fig.layout.shapes, *shapes], annotations=[*fig.layout.annotations, *notes]
    )
    for kind, (name, colour, _) in EVENT_STYLES.items():
        hits = [(e, arms) for e, arms in events if e.kind == kind]
        if not hits:
            continue
        fig.add_trace(
            go.Scatter(
                x=[e.step for e, _ in hits],
                y=[1.0] * len(hits),
                yaxis="y2",
                mode="markers",
                name=name,
                marker={"symbol": "triangle-down", "size": 16, "color": colour},
                cliponaxis=False,
                hovertext=[
                    f"step {e.step:,}: {e.detail}" + (f" ({', '.join(a)})" if n_arms > 1 else "")
                    for e, a in hits
                ],
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )
    if events:
        fig.update_layout(
            yaxis2={"overlaying": "y", "range": [0, 1], "visible": False, "fixedrange": True}
        )


# --- 1. training curves ------------------------------------------------------------------

_METRICS = {  # metric -> (title, y-axis title, scale, hover format)
    "loss": ("Loss", "loss (cross-entropy, nats)", 1.0, ".4f"),
    "accuracy": ("Accuracy", "accuracy (%)", 100.0, ".1f"),
}


def curves_figure(
    snapshots: dict[str, Snapshot],
    metric: str = "loss",
    *,
    log_y: bool = False,
    max_points: int = 400,
) -> go.Figure:
    """Training curve (solid) and validation points (dashed, markers) of every arm.

    Args:
        snapshots: arm name -> snapshot; all arms share the axes, so twins overlay.
        metric: "loss" or "accuracy" (shown in %).
        log_y: a log loss axis, to see late progress.
        max_points: training points per arm at most (means of consecutive steps).
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be 'loss' or 'accuracy', got {metric!r}")
    title, y_title, scale, fmt = _METRICS[metric]
    if not any(s.steps or s.evals for s in snapshots.values()):
        return _waiting(title)
    fig = go.Figure()
    for arm, (colour, family) in _arm_colours(snapshots).items():
        snap = snapshots[arm]
        _add_curve(fig, arm, snap.downsample(max_points), metric, scale, fmt, colour)
        _add_validation(fig, arm, snap, metric, scale, fmt, colour, family, max_points)
    _add_events(fig, _collect_events(snapshots), len(snapshots))
    fig.update_xaxes(title_text="step (optimizer steps)", rangemode="tozero")
    fig.update_yaxes(title_text=y_title + (" (log scale)" if log_y else ""))
    if log_y:
        fig.update_yaxes(type="log")
    fig.update_layout(hovermode="x unified", legend={"groupclick": "toggleitem"})
    return style(fig, title)


def _add_curve(fig, arm, snap: Snapshot, metric, scale, fmt, colour) -> None:
    if not snap.steps:
        return
    fig.add_trace(
        go.Scatter(
            x=snap.column("step"),
            y=snap.column(metric) * scale,
            mode="lines",
            name=f"{arm} · train",
            legendgroup=arm,
            line={"color": colour, "width": 3},
            hovertemplate=f"%{{y:{fmt}}}",
        )
    )


def _add_validation(fig, arm, snap, metric, scale, fmt, colour, family, max_points) -> None:
    evals = _thin(snap.evals, max_points)
    if not evals:
        return
    fig.add_trace(
        go.Scatter(
            x=[e.step for e in evals],
            y=[getattr(e, metric) * scale for e in evals],
            mode="lines+markers",
            name=f"{arm} · validation",
            legendgroup=arm,
            line={"color": colour, "width": 2, "dash": "dash"},
            marker={"color": colour, "size": 10, "symbol": _SYMBOLS[family]},
            hovertemplate=f"%{{y:{fmt}}}",
        )
    )


# --- 2. gradient norm over depth ---------------------------------------------------------


def _record_at(snapshot: Snapshot, step: int | None) -> StepRecord:
    """The latest record, or the last one logged at or before `step` (else the first)."""
    if step is None:
        return snapshot.steps[-1]
    before = [r for r in snapshot.steps if r.step <= step]
    return before[-1] if before else snapshot.steps[0]


def grad_depth_figure(snapshots: dict[str, Snapshot], *, step: int | None = None) -> go.Figure:
    """Per-layer gradient L2 norm against depth (input left), one line per arm.

    Args:
        snapshots: arm name -> snapshot.
        step: the logged step to show (the last one at or before it); None: the latest.
    """
    title = "Gradient norm per layer"
    live = {arm: s for arm, s in snapshots.items() if s.steps}
    if not live:
        return _waiting(title)
    fig = go.Figure()
    order: list[str] = []
    shown_steps = set()
    for arm, (colour, family) in _arm_colours(live).items():
        snap = live[arm]
        record = _record_at(snap, step)
        shown_steps.add(record.step)
        order += [name for name in snap.layers if name not in order]
        fig.add_trace(
            go.Scatter(
                x=list(snap.layers),
                y=_positive(record.grad_norms),
                mode="lines+markers",
                name=arm,
                line={"color": colour, "width": 3},
                marker={"color": colour, "size": 9, "symbol": _SYMBOLS[family]},
                hovertemplate=f"{arm}, step {record.step:,}<br>%{{x}}: %{{y:.2e}}<extra></extra>",
            )
        )
    fig.update_xaxes(
        title_text="layer (input → output)",
        type="category",
        categoryorder="array",
        categoryarray=order,
    )
    fig.update_yaxes(title_text="gradient L2 norm (log scale)", type="log", exponentformat="power")
    when = f"step {shown_steps.pop():,}" if len(shown_steps) == 1 else "the chosen step"
    return style(fig, f"{title} at {when}")


# --- 3. gradient heatmap over depth and time ---------------------------------------------


def band_of(norm: float) -> str:
    """The band name of one gradient norm ('vanishing < 1e-4', ...)."""
    z = _log_norms(np.array([norm]))[0]
    for name, lo, hi, _ in BANDS:
        if lo <= z < hi or (hi == Z_MAX and z == Z_MAX):
            return name
    raise ValueError(f"no band for {norm!r}")


def _log_norms(norms: np.ndarray) -> np.ndarray:
    """log10 of the norms clipped to [Z_MIN, Z_MAX]; 0 counts as vanishing, inf as
    exploding, NaN stays NaN (a gap)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(norms > 0, np.log10(np.where(norms > 0, norms, 1.0)), Z_MIN)
    z = np.where(np.isnan(norms), np.nan, z)
    return np.clip(z, Z_MIN, Z_MAX)


def band_colorscale() -> list[list]:
    """A stepped colorscale over [Z_MIN, Z_MAX]: one flat colour per band."""
    scale = []
    for _, lo, hi, colour in BANDS:
        a, b = ((v - Z_MIN) / (Z_MAX - Z_MIN) for v in (lo, hi))
        scale += [[a, colour], [b, colour]]
    return scale


def grad_heatmap(snapshot: Snapshot, *, max_points: int = 200) -> go.Figure:
    """Gradient norm of every layer (rows, input at the bottom) at every logged step
    (columns), coloured by fixed bands so runs can be compared by eye.

    Args:
        snapshot: one arm's log.
        max_points: columns at most (each the mean of consecutive steps).
    """
    title = "Gradient norm by layer and step"
    if not snapshot.steps or not snapshot.layers:
        return _waiting(title)
    snap = snapshot.downsample(max_points)
    norms = snap.matrix("grad_norms").T  # (layers, steps)
    fig = go.Figure(
        go.Heatmap(
            z=_log_norms(norms).astype(np.float32),
            x=snap.column("step"),
            y=list(snap.layers),
            customdata=norms.astype(np.float32),
            zmin=Z_MIN,
            zmax=Z_MAX,
            zauto=False,
            colorscale=band_colorscale(),
            colorbar={
                "title": {"text": "gradient<br>L2 norm", "font": {"size": TICK_SIZE}},
                "tickvals": [(lo + hi) / 2 for _, lo, hi, _ in BANDS],
                "ticktext": [name for name, *_ in BANDS],
                "tickfont": {"size": TICK_SIZE},
            },
            hovertemplate="%{y}, step %{x:,}<br>norm %{customdata:.2e}<extra></extra>",
            name="gradient norm",
        )
    )
    _add_events(fig, _collect_events({"run": snapshot}), 1)
    fig.update_xaxes(title_text="step (optimizer steps)")
    fig.update_yaxes(
        title_text="layer (input at the bottom)",
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
    title = "Gradient flow at initialisation"
    if not flows:
        return _waiting(title, "Run the experiment to see the gradient flow")
    colours = _flow_colours(flows)
    fig = go.Figure()
    for flow, (colour, family) in zip(flows, colours, strict=True):
        n = len(flow.norms)
        fig.add_trace(
            go.Scatter(
                x=np.linspace(0.0, 1.0, n) if n > 1 else [0.0],
                y=_positive(flow.norms),
                mode="lines+markers",
                name=flow.name,
                line={"color": colour, "width": 3},
                marker={"color": colour, "size": 7, "symbol": _SYMBOLS[family]},
                hovertext=list(flow.layers),
                hovertemplate=f"{flow.name}<br>%{{hovertext}}: %{{y:.2e}}<extra></extra>",
            )
        )
    fig.update_xaxes(
        title_text="relative depth (0 = input side, 1 = output side)", range=[-0.02, 1.02]
    )
    fig.update_yaxes(title_text="gradient L2 norm (log scale)", type="log", exponentformat="power")
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
    kind = RESIDUAL if point.residual else PLAIN
    return f"{kind} · {'BN' if point.batch_norm else 'no BN'} · {point.activation}"


def sweep_figure(points: list[SweepPoint]) -> go.Figure:
    """First-layer over last-block gradient norm at init against depth, one line per
    (residual, batch norm, activation) variant. Far below 1: the early layers starve."""
    title = "Does the gradient reach the first layer?"
    if not points:
        return _waiting(title, "Run the sweep to see how depth changes the gradient")
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
                    y=_positive(p.flow.first_to_last for p in group),
                    mode="lines+markers",
                    name=variant_name(group[0]),
                    line={"color": colour, "width": 3, "dash": _dash(key[2], activations)},
                    marker={"color": colour, "size": 11, "symbol": _SYMBOLS[family]},
                    hovertemplate="depth %{x}: ratio %{y:.2e}<extra>%{fullData.name}</extra>",
                )
            )
    fig.add_hline(y=1, line={"color": GREY, "width": 1.5, "dash": "dot"}, name="ratio 1")
    depths = sorted({p.depth for p in points})
    fig.update_xaxes(title_text="depth (weight layers)", tickvals=depths)
    fig.update_yaxes(
        title_text="first / last gradient norm (log scale)", type="log", exponentformat="power"
    )
    return style(fig, title)


def _dash(activation: str, activations: list[str]) -> str:
    return _DASHES[activations.index(activation) % len(_DASHES)]
