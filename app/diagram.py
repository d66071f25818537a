"""The network diagram: one box per layer, each skip connection an arc that is visibly
on (solid), off (dashed) or changing shape (labelled 'pad' or '1x1'). Pure plotly."""

from __future__ import annotations

import math
from itertools import pairwise

import plotly.graph_objects as go

from app.choices import label
from app.i18n import _, number, tr
from app.style import FONT_SIZE, GREY, TICK_SIZE, style
from core.plan import Layer, Plan, describe_skip
from core.spec import PROJECTION, ZERO_PAD, format_shape

# Layout units: one row per layer (pitch 1), boxes 2.4 wide, columns 4.2 apart, top to
# bottom, wrapping into balanced columns. A skip arc leaves the main line just above its
# block, bends round the right side and rejoins just below it.
_BOX_W, _BOX_H = 1.2, 0.31  # half sizes
_ARC_X, _ARC_Y = 1.45, 0.44  # arc's reach right of the centre line, and up/down
_COL_W, _ROW_PX, _UNIT_PX = 4.2, 56, 100
SKIP_ON = {"color": "#0072B2", "width": 3.5}
SKIP_OFF = {"color": GREY, "width": 2.5, "dash": "dash"}
SHORTCUT_LABELS = {ZERO_PAD: "pad", PROJECTION: "1x1"}


def format_count(n: int) -> str:
    """9248 -> '9.2k', 16000 -> '16k', 1_600_000 -> '1.6M', 650 -> '650'."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            value = n / size
            text = f"{value:.0f}" if value >= 100 else f"{value:.1f}".removesuffix(".0")
            return text + unit
    return str(n)


def box_label(layer: Layer) -> str:
    """'basic · 32x16x16 · 9.2k': kind, output shape, parameters."""
    return f"{layer.kind} · {format_shape(layer.out_shape)} · {format_count(layer.params)}"


def _hover(layer: Layer) -> str:
    rows = [
        f"<b>{layer.name}</b> ({label(layer.kind)})",
        f"{format_shape(layer.in_shape)} → {format_shape(layer.out_shape)}",
        _("{params} parameters · {macs} multiply-adds per image").format(
            params=number(layer.params), macs=number(layer.macs)
        ),
    ]
    if layer.activation or layer.batch_norm:
        act = label(layer.activation) if layer.activation else _("none")
        if layer.batch_norm:
            rows.append(_("activation {act} · BatchNorm on").format(act=act))
        else:
            rows.append(_("activation {act} · BatchNorm off").format(act=act))
    if layer.residual:
        rows.append(_("skip: {how}").format(how=tr(describe_skip(layer))))
    return "<br>".join(rows)


def _arc_path(x: float, y: float) -> str:
    """From the main line above the box, right and down round it, back below it."""
    top, bottom, right, r = y + _ARC_Y, y - _ARC_Y, x + _ARC_X, 0.12
    return (
        f"M {x},{top} L {right - r},{top} Q {right},{top} {right},{top - r} "
        f"L {right},{bottom + r} Q {right},{bottom} {right - r},{bottom} L {x},{bottom}"
    )


def _grid(n: int, max_rows: int) -> tuple[int, list[tuple[float, float]]]:
    """Rows per column and the (x, y) centre of each of `n` boxes, columns balanced."""
    cols = math.ceil(n / max_rows)
    rows = math.ceil(n / cols)
    return rows, [(_COL_W * (i // rows), -float(i % rows)) for i in range(n)]


def _flow_line(centres: list[tuple[float, float]]) -> tuple[list, list]:
    """The main data path: down each column, and over the top to the next column."""
    xs: list = []
    ys: list = []
    x0, y0 = centres[0]
    xs += [x0, x0, None]
    ys += [y0 + 0.75, y0 + _BOX_H, None]
    for (xa, ya), (xb, yb) in pairwise(centres):
        if xa == xb:
            xs += [xa, xb, None]
            ys += [ya - _BOX_H, yb + _BOX_H, None]
        else:  # wrap: down, right to the gutter, up, right, down into the next column
            mid, low, high = xa + _COL_W / 2, ya - 0.6, yb + 0.6
            xs += [xa, xa, mid, mid, xb, xb, None]
            ys += [ya - _BOX_H, low, low, high, high, yb + _BOX_H, None]
    return xs, ys


def network_diagram(plan: Plan, *, max_rows: int = 20) -> go.Figure:
    """The network as boxes top to bottom (wrapping into columns of at most `max_rows`),
    each residual block with its skip arc: solid blue when on, dashed grey when off,
    labelled 'pad' (zero-pad, option A) or '1x1' (projection, option B).

    Shapes are named for tests and tools: 'box:<layer>', 'skip-on:<layer>',
    'skip-off:<layer>'. Hovering a box shows its full details.
    """
    layers = plan.layers
    rows, centres = _grid(len(layers), max_rows)
    fig = go.Figure()
    xs, ys = _flow_line(centres)
    fig.add_trace(
        go.Scatter(
            x=xs, y=ys, mode="lines", line={"color": "#444444", "width": 2}, hoverinfo="skip"
        )
    )
    shapes: list[dict] = []
    notes: list[dict] = [
        {
            "x": centres[0][0],
            "y": centres[0][1] + 0.75,
            "text": _("input · {shape}").format(shape=format_shape(plan.spec.input_shape)),
            "showarrow": False,
            "yanchor": "bottom",
            "font": {"size": TICK_SIZE},
        }
    ]
    for layer, (x, y) in zip(layers, centres, strict=True):
        shapes.append(_box(layer, x, y))
        notes.append(_box_note(layer, x, y))
        if layer.residual:
            shapes.append(_skip_arc(layer, x, y))
            if layer.shortcut in SHORTCUT_LABELS:
                notes.append(_shortcut_note(layer, x, y))
    fig.update_layout(shapes=shapes, annotations=notes)  # at once: add_shape is quadratic
    _add_hover_points(fig, layers, centres)
    _add_arc_legend(fig, any(layer.residual for layer in plan.blocks))
    cols = centres[-1][0] / _COL_W + 1
    fig.update_xaxes(visible=False, range=[-_BOX_W - 0.2, _COL_W * (cols - 1) + _COL_W / 2 + 0.1])
    fig.update_yaxes(visible=False, range=[-(rows - 1) - 0.9, 1.3])
    residual = sum(layer.residual for layer in plan.blocks)
    on = sum(bool(layer.skip) for layer in plan.blocks)
    facts = _("{params} parameters · {blocks} blocks").format(
        params=format_count(plan.params), blocks=len(plan.blocks)
    )
    if residual:
        facts += _(" · {on} of {total} skips on").format(on=on, total=residual)
    style(fig, plan.spec.name, height=int(170 + (rows + 2.2) * _ROW_PX))
    fig.update_layout(
        title_subtitle={"text": facts, "font": {"size": FONT_SIZE}},
        width=max(560, int(120 + _UNIT_PX * (_COL_W * cols - _COL_W / 2 + _BOX_W + 0.3))),
        margin={"l": 20, "r": 20, "t": 95, "b": 60},
        legend={"orientation": "h", "x": 0, "y": 0, "yanchor": "top"},
        hovermode="closest",
        hoverdistance=40,
    )
    return fig


def _box(layer: Layer, x: float, y: float) -> dict:
    edge = layer.kind in ("stem", "head")
    return {
        "type": "rect",
        "name": f"box:{layer.name}",
        "x0": x - _BOX_W,
        "x1": x + _BOX_W,
        "y0": y - _BOX_H,
        "y1": y + _BOX_H,
        "line": {"color": "#444444", "width": 1.5},
        "fillcolor": "#EDEDED" if edge else "#FFFFFF",
        "layer": "above",
    }


def _box_note(layer: Layer, x: float, y: float) -> dict:
    text = box_label(layer)
    size = 15 if len(text) <= 32 else 13
    return {"x": x, "y": y, "text": text, "showarrow": False, "font": {"size": size}}


def _skip_arc(layer: Layer, x: float, y: float) -> dict:
    state = "on" if layer.skip else "off"
    return {
        "type": "path",
        "name": f"skip-{state}:{layer.name}",
        "path": _arc_path(x, y),
        "line": SKIP_ON if layer.skip else SKIP_OFF,
        "layer": "below",
    }


def _shortcut_note(layer: Layer, x: float, y: float) -> dict:
    colour = (SKIP_ON if layer.skip else SKIP_OFF)["color"]
    return {
        "x": x + _ARC_X + 0.06,
        "y": y,
        "text": SHORTCUT_LABELS[layer.shortcut],
        "name": f"shortcut:{layer.name}",
        "showarrow": False,
        "xanchor": "left",
        "font": {"size": TICK_SIZE - 1, "color": colour},
    }


def _add_hover_points(fig: go.Figure, layers, centres) -> None:
    """Invisible markers across each box, so hovering anywhere on it shows its details."""
    offsets = (-0.8 * _BOX_W, 0.0, 0.8 * _BOX_W)
    xs = [x + dx for x, _ in centres for dx in offsets]
    ys = [y for _, y in centres for _ in offsets]
    text = [_hover(layer) for layer in layers for _ in offsets]
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers",
            marker={"size": 30, "color": "rgba(0,0,0,0)"},
            hovertext=text,
            hovertemplate="%{hovertext}<extra></extra>",
            showlegend=False,
            name="layers",
        )
    )


def _add_arc_legend(fig: go.Figure, any_skips: bool) -> None:
    """Legend entries that explain the arcs (empty traces: only their legend shows)."""
    fig.update_traces(showlegend=False)
    if not any_skips:
        return
    for name, line in (
        (_("skip on: output = F(x) + x"), SKIP_ON),
        (_("skip off: output = F(x)   ('pad' / '1x1': shortcut type)"), SKIP_OFF),
    ):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=name, line=line))
