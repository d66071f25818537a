"""Skip-toggle and learning-rate events drawn on a step axis: a labelled vertical line per
event and a hoverable marker at its top. Pure plotly; no streamlit."""

from __future__ import annotations

import plotly.graph_objects as go

from app.style import EVENT_STYLES, MAX_EVENTS, MAX_LABEL, TICK_SIZE
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


def add_events(fig: go.Figure, events: list[tuple[Event, list[str]]], n_arms: int) -> None:
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
