"""The look of every figure, sized for a classroom projector: big fonts, the Okabe-Ito
palette (safe for colour-blind viewers), plain nets in oranges and residual nets in blues,
and the small helpers every figure module shares. Pure plotly; no streamlit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from app.i18n import N_, plotly_separators, translate
from core.telemetry import Snapshot

FONT_SIZE = 18
TITLE_SIZE = 24
TICK_SIZE = 16
WAITING = N_("Waiting for the first step…")

# Light -> dark anchors per family: plain nets in oranges, residual nets in blues.
PLAIN, RESIDUAL, OTHER = "plain", "residual", "other"
_FAMILY_SHADES = {
    PLAIN: ("#F3B45E", "#E69F00", "#D55E00", "#8F3F00"),
    RESIDUAL: ("#9FD3F2", "#56B4E9", "#0072B2", "#003E61"),
    OTHER: ("#9ADBC5", "#3FBF99", "#009E73", "#005C43"),
}
_MAIN_SHADE = 2 / 3  # position of the family's main colour among its anchors
SYMBOLS = {PLAIN: "square", RESIDUAL: "circle", OTHER: "diamond"}
DASHES = ("solid", "dash", "dot", "dashdot")
GREY = "#8C8C8C"

# Events drawn as vertical lines: kind -> (legend name, colour, dash).
EVENT_STYLES = {
    "skip": (N_("skip toggle"), "#CC79A7", "dash"),
    "lr": (N_("learning-rate change"), "#000000", "dot"),
}
MAX_EVENTS = 60  # newest kept; more would only be a smear of lines
MAX_LABEL = 28

# Gradient-norm bands, fixed so that two runs (or two classes) read the same colours.
# Edges in log10 of the L2 norm; the outer limits clip, so every norm lands in a band.
Z_MIN, Z_MAX = -6.0, 3.0
BANDS = (  # name, lower edge (log10), upper edge (log10), colour
    (N_("vanishing < 1e-4"), Z_MIN, -4.0, "#1A1A1A"),
    (N_("weak 1e-4 – 1e-2"), -4.0, -2.0, "#56B4E9"),
    (N_("healthy 1e-2 – 10"), -2.0, 1.0, "#009E73"),
    (N_("exploding > 10"), 1.0, Z_MAX, "#D55E00"),
)


def style(fig: go.Figure, title: str, *, height: int = 580) -> go.Figure:
    """The projector look: big fonts, the legend below the plot (on plotly_white, the
    default template: `TEMPLATE`). Merged
    into the figure's own layout as `update_layout` would, without its cost (about 50 ms
    a figure, most of a live refresh: bench/refresh_cost.py): the values are constants,
    checked once against plotly's validation by the tests, so they are set unvalidated."""
    layout = {
        "title": {"text": title, "font": {"size": TITLE_SIZE}, "x": 0.01, "xanchor": "left"},
        "font": {"size": FONT_SIZE},
        # Below the plot, so half-width charts keep their full width for the data.
        "legend": {
            "font": {"size": FONT_SIZE - 2},
            "orientation": "h",
            "x": 0,
            "xanchor": "left",
            "y": -0.22,
            "yanchor": "top",
        },
        "hoverlabel": {"font": {"size": FONT_SIZE - 2}},
        "margin": {"l": 90, "r": 30, "t": 80, "b": 150},
        "height": height,
        "separators": plotly_separators(),  # 19,218.5 in English, 19.218,5 in German
    }
    merge_unvalidated(fig.layout, layout)
    axis = {"tickfont": {"size": TICK_SIZE}, "title": {"font": {"size": FONT_SIZE}}}
    for ax in (*fig.select_xaxes(), *fig.select_yaxes()):
        merge_unvalidated(ax, axis)
    return fig


TEMPLATE = "resnet_explorer"
TRACES = ("scatter", "heatmap")  # the trace types drawn here (go.Image has no defaults)
UNUSED = ("polar", "ternary", "scene", "geo")  # subplot kinds no figure here has


def slim_white() -> go.layout.Template:
    """plotly_white without the defaults of what no figure here draws: the same look, a
    third of the bytes (each figure carries its template to the browser, every refresh)."""
    white = pio.templates["plotly_white"].to_plotly_json()
    layout = {k: v for k, v in white["layout"].items() if k not in UNUSED}
    data = {k: v for k, v in white["data"].items() if k in TRACES}
    return go.layout.Template(layout=layout, data=data)


# Every go.Figure starts from it (copied unvalidated at construction, where setting
# template="plotly_white" in `style` validated and copied the whole template again).
pio.templates[TEMPLATE] = slim_white()
pio.templates.default = TEMPLATE


def merge_unvalidated(obj, values: dict) -> None:
    """`obj.update(values)` (nested dicts merged into what `obj` has) with plotly's
    validation off, for constant values only."""
    obj._validate = False
    try:
        for key, value in values.items():
            if isinstance(value, dict):
                current = obj[key]
                had = current.to_plotly_json() if current is not None else {}
                value = _merged(had, value)
            obj[key] = value
    finally:
        obj._validate = True


def _merged(base: dict, new: dict) -> dict:
    out = dict(base)
    for key, value in new.items():
        old = out.get(key)
        out[key] = (
            _merged(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
        )
    return out


def new_figure(*traces) -> go.Figure:
    """A figure that skips plotly's validation of every later `add_trace` and `update_*`
    (a third of a live refresh's CPU): only for figures built by code from numbers,
    checked against validated builds by tests/app/test_live_figures.py."""
    return go.Figure(list(traces) or None, _validate=False)


def waiting(title: str, message: str = WAITING) -> go.Figure:
    """A valid, empty figure that says what it waits for."""
    fig = go.Figure()
    fig.add_annotation(
        text=translate(message),
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


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def blend(anchors: Sequence[str], t: float) -> str:
    """The colour at `t` (0 = first anchor, 1 = last) along a piecewise-linear ramp."""
    t = min(max(t, 0.0), 1.0) * (len(anchors) - 1)
    i = min(int(t), len(anchors) - 2)
    a, b = hex_to_rgb(anchors[i]), hex_to_rgb(anchors[i + 1])
    f = t - i
    return "#" + "".join(f"{round(x + (y - x) * f):02X}" for x, y in zip(a, b, strict=True))


def shades(family: str, n: int) -> list[str]:
    """`n` colours of one family, light to dark; one alone gets the family's main colour."""
    anchors = _FAMILY_SHADES[family]
    if n == 1:
        return [blend(anchors, _MAIN_SHADE)]
    return [blend(anchors, t) for t in np.linspace(0.2, 1.0, n)]


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


def arm_colours(snapshots: dict[str, Snapshot]) -> dict[str, tuple[str, str]]:
    """arm -> (colour, family), shades spread within each family in arm order."""
    families = {arm: family_of_snapshot(arm, snap) for arm, snap in snapshots.items()}
    out = {}
    for family in (PLAIN, RESIDUAL, OTHER):
        arms = [arm for arm, f in families.items() if f == family]
        for arm, colour in zip(arms, shades(family, len(arms)) if arms else [], strict=True):
            out[arm] = (colour, family)
    return out


def positive(values: Iterable[float]) -> np.ndarray:
    """Values for a log axis: zeros, negatives and non-finite values become gaps (NaN)."""
    a = np.asarray(list(values), dtype=np.float64)
    return np.where(np.isfinite(a) & (a > 0), a, np.nan)


def thin(items: Sequence, max_points: int) -> Sequence:
    """At most `max_points` items, evenly spaced, the last one always kept."""
    if len(items) <= max_points:
        return items
    idx = np.unique(np.linspace(len(items) - 1, 0, max_points).round().astype(int))
    return [items[i] for i in idx]


def band_of(norm: float) -> str:
    """The band name of one gradient norm ('vanishing < 1e-4', ...)."""
    z = log_norms(np.array([norm]))[0]
    for name, lo, hi, _ in BANDS:
        if lo <= z < hi or (hi == Z_MAX and z == Z_MAX):
            return name
    raise ValueError(f"no band for {norm!r}")


def log_norms(norms: np.ndarray) -> np.ndarray:
    """log10 of the norms clipped to [Z_MIN, Z_MAX]; 0 counts as vanishing, inf as
    exploding, NaN stays NaN (a gap)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(norms > 0, np.log10(np.where(norms > 0, norms, 1.0)), Z_MIN)
    z = np.where(np.isnan(norms), np.nan, z)
    return np.clip(z, Z_MIN, Z_MAX)


def band_levels(norms: np.ndarray) -> tuple[np.ndarray, int]:
    """Heatmap values for the stepped colour scale, and their units per decade: tenths
    of a decade as int8 (a quarter of float32's bytes; band edges are whole tenths, so
    flooring keeps every value in its band), or float32 log10 where a norm is NaN (a gap,
    which int8 cannot hold)."""
    z = log_norms(norms)
    if np.isnan(z).any():
        return z.astype(np.float32), 1
    return np.floor(np.round(z * 10, 6)).astype(np.int8), 10


def band_colorscale() -> list[list]:
    """A stepped colorscale over [Z_MIN, Z_MAX]: one flat colour per band."""
    scale = []
    for _, lo, hi, colour in BANDS:
        a, b = ((v - Z_MIN) / (Z_MAX - Z_MIN) for v in (lo, hi))
        scale += [[a, colour], [b, colour]]
    return scale
