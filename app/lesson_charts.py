"""The charts of a lesson, from the run's snapshots: the lesson file's `chart:` names what
a class should look at first; the page draws it large. In presenter mode every line is
recoloured from PROJECTOR_LINES and thickened: colours picked for their contrast on white
(tests/app/test_lessons.py computes the WCAG ratios), which a washed-out projector keeps.
"""

from __future__ import annotations

import plotly.graph_objects as go

from app import figures
from app.i18n import N_, _

BACKGROUND = "#FFFFFF"
PROJECTOR_TEXT = "#111111"  # body text and axis labels
# Dark Okabe-Ito shades: vermilion, blue, bluish green, reddish purple, black.
PROJECTOR_LINES = ("#B34700", "#0060A0", "#007A58", "#9A4A7F", "#222222")
PROJECTOR_FONT = 26
MAX_POINTS = 300
CHART_HEIGHT, PRESENT_HEIGHT = 460, 720

TITLES = {  # the chart the lesson names, and the second one it draws beside it
    "train_loss": (N_("Training loss"), "loss"),
    "val_accuracy": (N_("Accuracy, training and validation"), "accuracy"),
    "grad_norms": (N_("Gradient norm of each layer"), "grads"),
}


def lesson_figures(chart: str, snapshots: dict, *, present: bool) -> list[go.Figure]:
    """The lesson's charts, most important first: its named chart, then the loss or the
    gradients (a lesson about one is read with the other)."""
    height = PRESENT_HEIGHT if present else CHART_HEIGHT
    loss = figures.curves_figure(snapshots, "loss", max_points=MAX_POINTS, height=height)
    grads = figures.grad_depth_figure(snapshots, height=height)
    acc = figures.curves_figure(snapshots, "accuracy", max_points=MAX_POINTS, height=height)
    order = {
        "train_loss": [loss, grads],
        "val_accuracy": [acc, loss],
        "grad_norms": [grads, loss],
    }.get(chart, [loss, acc])
    if present:
        order = [projector(fig) for fig in order]
    return order


def projector(fig: go.Figure) -> go.Figure:
    """Dark, thick lines and large near-black type: readable when a projector washes out
    the pale shades of the usual palette."""
    colours: dict[str, str] = {}
    for trace in fig.data:
        group = trace.legendgroup or trace.name or ""
        colour = colours.setdefault(group, PROJECTOR_LINES[len(colours) % len(PROJECTOR_LINES)])
        if hasattr(trace, "line") and trace.line is not None:
            trace.line.color = colour
            trace.line.width = 5
        if hasattr(trace, "marker") and trace.marker is not None:
            trace.marker.color = colour
    fig.update_layout(
        font={"size": PROJECTOR_FONT, "color": PROJECTOR_TEXT},
        paper_bgcolor=BACKGROUND,
        plot_bgcolor=BACKGROUND,
    )
    return fig


def chart_caption(chart: str) -> str:
    title = TITLES.get(chart)
    return _(title[0]) if title else ""


def contrast(a: str, b: str) -> float:
    """The WCAG 2 contrast ratio of two #RRGGBB colours (1 to 21)."""

    def lum(colour: str) -> float:
        rgb = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)
