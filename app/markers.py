"""Skip-toggle and learning-rate events drawn on a step axis: a labelled vertical line per
event and a hoverable marker at its top; and marks at a log axis's floor where a value
cannot be drawn (a gradient of exactly 0). Pure plotly; no streamlit."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from app.i18n import N_, number, translate
from app.style import EVENT_STYLES, GREY, MAX_EVENTS, MAX_LABEL, TICK_SIZE
from core.telemetry import Event, Snapshot


def collect_events(snapshots: dict[str, Snapshot]) -> list[tuple[Event, list[str]]]:
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


FOLD = 0.03  # labels of events closer than 3% of the step axis would overlap: one label
FOLDED_LINES = 3  # a folded label lists at most this many events, then "+ n more"


def _x_extent(fig: go.Figure, events) -> float:
    """The step axis's extent: the largest step of the figure's data and of the events."""
    xs = [e.step for e, _ in events]
    for trace in fig.data:
        if trace.x is not None and len(trace.x) and not isinstance(trace.x[0], str):
            xs.append(float(np.nanmax(np.asarray(trace.x, dtype=float))))
    return max(xs, default=1.0) or 1.0


def fold_labels(steps_details: list[tuple[int, str]], gap: float) -> list[tuple[int, list[str]]]:
    """Events in step order grouped where each is less than `gap` steps after the group's
    first, so their rotated labels never overlap: (first step, every detail in the group)."""
    groups: list[tuple[int, list[str]]] = []
    for step, detail in steps_details:
        if groups and step - groups[-1][0] < gap:
            groups[-1][1].append(detail)
        else:
            groups.append((step, [detail]))
    return groups


def _label_text(details: list[str]) -> str:
    """One line per event (side by side once rotated), the surplus counted."""
    lines = [_short(d) for d in details[:FOLDED_LINES]]
    if len(details) > FOLDED_LINES:
        lines.append(translate("+ {n} more (hover)").format(n=len(details) - FOLDED_LINES))
    return "<br>".join(lines)


def add_events(fig: go.Figure, events: list[tuple[Event, list[str]]], n_arms: int) -> None:
    """Each event as a labelled vertical line (white halo, so it shows on a heatmap too)
    and a hoverable marker at its top, on a hidden 0-1 axis laid over the plot. Events a
    few steps apart share one label listing each (`fold_labels`), so no label hides another."""
    shapes, notes = [], []
    gap = FOLD * _x_extent(fig, events)
    for event, _ in events:
        _, colour, dash = EVENT_STYLES[event.kind]
        line = {"type": "line", "x0": event.step, "x1": event.step, "xref": "x"}
        line |= {"y0": 0, "y1": 1, "yref": "paper", "layer": "above"}
        shapes.append(line | {"name": "event-halo", "line": {"color": "white", "width": 6}})
        style = {"color": colour, "width": 2.5, "dash": dash}
        shapes.append(line | {"name": f"event:{event.kind}", "line": style})
    kinds = {(e.step, e.detail): e.kind for e, _ in events}
    for step, details in fold_labels([(e.step, e.detail) for e, _ in events], gap):
        kind = kinds[(step, details[0])]
        colour = EVENT_STYLES[kind][1] if len(details) == 1 else "#000000"
        notes.append(  # reads downwards, just left of the line, on a light backing
            {
                "x": step,
                "y": 0.98,
                "xref": "x",
                "yref": "paper",
                "text": _label_text(details),
                "name": f"event:{kind}",
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
    _add_markers(fig, events, n_arms)


def _add_markers(fig: go.Figure, events: list[tuple[Event, list[str]]], n_arms: int) -> None:
    """One hoverable triangle trace per event kind at the top of the plot, on a hidden 0-1
    axis (yaxis2) laid over it; the hover names the arms when there are several."""
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
                name=translate(name),
                marker={"symbol": "triangle-down", "size": 16, "color": colour},
                cliponaxis=False,
                hovertext=[
                    translate("step {step}: {detail}").format(step=number(e.step), detail=e.detail)
                    + (f" ({', '.join(a)})" if n_arms > 1 else "")
                    for e, a in hits
                ],
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )
    if events:
        fig.update_layout(
            yaxis2={"overlaying": "y", "range": [0, 1], "visible": False, "fixedrange": True}
        )


ZERO_TEXT = N_("0 (too small to plot)")


def floor_of(*value_sets) -> float:
    """A log axis's floor: a decade below the smallest positive finite value (1e-12 if none)."""
    values = np.concatenate([np.asarray(list(v), dtype=np.float64).ravel() for v in value_sets])
    shown = values[np.isfinite(values) & (values > 0)]
    return float(10 ** (np.floor(np.log10(shown.min())) - 1)) if shown.size else 1e-12


def add_floor_marks(fig, x, values, *, name: str, colour: str, labels, floor: float) -> None:
    """Values a log axis cannot draw (0, negative, NaN) as hollow marks at `floor`, each
    with hover text saying what it was, instead of a silent gap in the line."""
    values = np.asarray(list(values), dtype=np.float64)
    hidden = ~(np.isfinite(values) & (values > 0))
    if not hidden.any():
        return
    which = np.flatnonzero(hidden)
    fig.add_trace(
        go.Scatter(
            x=[x[i] for i in which],
            y=[floor] * len(which),
            mode="markers",
            name=f"{name}: not drawable",
            showlegend=False,
            marker={"symbol": "x-thin-open", "size": 14, "line": {"width": 3, "color": colour}},
            hovertext=[
                f"{name}, {labels[i]}: "
                + (
                    translate(ZERO_TEXT)
                    if values[i] <= 0
                    else translate("{value} (not plotted)").format(value=values[i])
                )
                for i in which
            ],
            hovertemplate="%{hovertext}<extra></extra>",
        )
    )
    if not any(shape.name == "axis floor" for shape in fig.layout.shapes):
        fig.add_hline(y=floor, line={"color": GREY, "width": 1, "dash": "dot"}, name="axis floor")
