"""The live panel's figures: rebuilt only when their own data changed, the same charts
from a chart snapshot as from the whole log, small enough to send every few seconds,
and styled exactly as plotly's validated `update_layout` would style them."""

import json

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from app import figures, style
from app.live_figures import HEAT_POINTS, MAX_POINTS, NAMES, LiveFigures
from core.telemetry import Event, RunLog, StepRecord


def _log(layers: int, steps: int, seed: int = 0) -> RunLog:
    log = RunLog(tuple(["stem", *(f"blocks.{i}" for i in range(layers - 2)), "head"]))
    _grow(log, steps, np.random.default_rng(seed))
    return log


def _grow(log: RunLog, steps: int, rng) -> None:
    n, start = len(log.layers), len(log.snapshot().steps) + 1
    for s in range(start, start + steps):
        log.append_step(
            StepRecord(
                step=s,
                epoch=s / 100,
                loss=float(rng.exponential()),
                accuracy=float(rng.random()),
                lr=0.1,
                grad_norms=tuple(rng.lognormal(-3, 1, n).tolist()),
                weight_norms=tuple(rng.random(n).tolist()),
                update_ratios=tuple(rng.random(n).tolist()),
                seconds=s * 0.1,
            )
        )


def _figures(panel, logs, heat_arm, log_y=False):
    charts = {arm: log.chart_snapshot(MAX_POINTS) for arm, log in logs.items()}
    heat = (heat_arm, lambda: logs[heat_arm].chart_snapshot(HEAT_POINTS))
    return panel.figures("run-1", charts, heat, log_y=log_y)


def test_a_figure_is_rebuilt_only_when_its_data_or_the_readers_choice_changed():
    logs = {"Plain-20": _log(5, 50), "ResNet-20": _log(5, 50, seed=1)}
    panel = LiveFigures()
    first = _figures(panel, logs, "Plain-20")
    assert panel.rebuilt == list(NAMES)
    assert _figures(panel, logs, "Plain-20") == first and panel.rebuilt == []
    _figures(panel, logs, "Plain-20", log_y=True)
    assert panel.rebuilt == ["loss"]
    _figures(panel, logs, "ResNet-20", log_y=True)
    assert panel.rebuilt == ["heat"]
    _grow(logs["ResNet-20"], 1, np.random.default_rng(2))
    _figures(panel, logs, "ResNet-20", log_y=True)
    assert panel.rebuilt == list(NAMES)
    logs["Plain-20"].append_event(Event(step=50, kind="lr", detail="lr = 0.01"))
    _figures(panel, logs, "ResNet-20", log_y=True)
    assert panel.rebuilt == ["loss", "depth", "acc"]  # the heatmap shows ResNet-20's


def test_live_charts_show_what_charts_of_the_whole_log_show():
    log = _log(6, 5000)
    live = _figures(LiveFigures(), {"a": log}, "a")
    whole = {"a": log.snapshot()}
    built = [
        figures.curves_figure(whole, "loss", max_points=MAX_POINTS),
        figures.grad_depth_figure(whole),
        figures.curves_figure(whole, "accuracy", max_points=MAX_POINTS),
        figures.grad_heatmap(whole["a"], max_points=HEAT_POINTS),
    ]
    for got, want in zip(live, built, strict=True):
        for g, w in zip(got.data, want.data, strict=True):
            for axis in ("x", "y", "z"):
                _same_values(getattr(g, axis, None), getattr(w, axis, None))
    depth = live[1].data[0].y  # the latest step as logged, not its bucket's mean
    np.testing.assert_allclose(depth, whole["a"].steps[-1].grad_norms)
    assert "5,000" in live[1].layout.title.text


def _same_values(got, want):
    if want is None or isinstance(want[0], str):
        assert (None if got is None else list(got)) == (None if want is None else list(want))
    else:
        np.testing.assert_allclose(np.asarray(got, float), np.asarray(want, float), rtol=1e-6)


def test_a_refresh_of_four_deep_nets_sends_less_than_100_kb():
    logs = {f"net{i}": _log(29, 3000, seed=i) for i in range(4)}  # ResNet-56's 29 rows
    sent = sum(len(pio.to_json(f, validate=False)) for f in _figures(LiveFigures(), logs, "net0"))
    assert sent < 100_000


def _validated(fig, title, height):
    """What `style` did with plotly's validated update calls."""
    fig.update_layout(
        template=style.TEMPLATE,
        title={"text": title, "font": {"size": style.TITLE_SIZE}, "x": 0.01, "xanchor": "left"},
        font={"size": style.FONT_SIZE},
        legend={
            "font": {"size": style.FONT_SIZE - 2},
            "orientation": "h",
            "x": 0,
            "xanchor": "left",
            "y": -0.22,
            "yanchor": "top",
        },
        hoverlabel={"font": {"size": style.FONT_SIZE - 2}},
        margin={"l": 90, "r": 30, "t": 80, "b": 150},
        height=height,
        separators=style.plotly_separators(),
    )
    fig.update_xaxes(tickfont={"size": style.TICK_SIZE}, title_font={"size": style.FONT_SIZE})
    fig.update_yaxes(tickfont={"size": style.TICK_SIZE}, title_font={"size": style.FONT_SIZE})
    return fig


def test_style_sets_what_validated_updates_set():
    def made():
        fig = make_subplots(rows=1, cols=2)
        fig.add_trace(go.Scatter(x=[1, 2], y=[3, 4]), row=1, col=2)
        fig.update_layout(legend={"groupclick": "toggleitem"}, title={"y": 0.9})
        fig.update_xaxes(title_text="step")
        return fig

    got = json.loads(style.style(made(), "Loss", height=400).to_json())
    assert got == json.loads(_validated(made(), "Loss", 400).to_json())
    assert got["layout"]["legend"]["groupclick"] == "toggleitem"  # the figure's own kept


def test_the_default_template_is_plotly_white_for_what_is_drawn_here():
    white = pio.templates["plotly_white"].to_plotly_json()
    slim = pio.templates[style.TEMPLATE].to_plotly_json()
    assert pio.templates.default == style.TEMPLATE
    assert slim["data"] == {k: white["data"][k] for k in style.TRACES}
    assert slim["layout"] == {k: v for k, v in white["layout"].items() if k not in style.UNUSED}
    assert len(json.dumps(slim)) < len(json.dumps(white)) / 2


def _band(z: float) -> str:
    return next(n for n, lo, hi, _ in style.BANDS if lo <= z < hi or z == hi == style.Z_MAX)


def test_heatmap_levels_keep_every_norm_in_its_band_in_a_quarter_of_the_bytes():
    edges = [0.0, 1e-7, 1e-4, 1e-2, 10.0, 1e5, 9.999e-5, 0.0099999, 9.99999, float("inf")]
    norms = np.array([edges + np.random.default_rng(0).lognormal(-4, 3, 500).tolist()])
    levels, per = style.band_levels(norms)
    assert levels.dtype == np.int8 and per == 10
    got = [_band(z / per) for z in levels.ravel()]
    assert got == [style.band_of(n) for n in norms.ravel()]
    gap, per = style.band_levels(np.array([[1.0, float("nan")]]))
    assert per == 1 and gap.dtype == np.float32 and np.isnan(gap[0, 1])


def test_unvalidated_figures_are_what_validated_ones_would_be(monkeypatch):
    logs = {"Plain-20": _log(5, 700), "ResNet-56": _log(29, 700, seed=1)}
    logs["Plain-20"].append_event(Event(step=300, kind="skip", detail="skip off: block 2"))
    logs["Plain-20"].append_event(Event(step=310, kind="lr", detail="lr = 0.01"))
    zero = StepRecord(
        701, 7.0, 0.5, 0.5, 0.1, (0.0, float("nan"), 1e-3, 1.0, 2.0), (1.0,) * 5, (0.1,) * 5
    )
    logs["Plain-20"].append_step(zero)  # a gradient a log axis cannot show: marked

    def built(log_y):
        out = []
        for fig in _figures(LiveFigures(), logs, "Plain-20", log_y=log_y):
            sent = json.loads(pio.to_json(fig, validate=False))
            # Unvalidated, add_hline leaves `annotations: []`, which draws nothing.
            sent["layout"] = {k: v for k, v in sent["layout"].items() if v != []}
            out.append(sent)
        return out

    fast = [built(False), built(True)]
    monkeypatch.setattr(figures, "new_figure", lambda *traces: go.Figure(list(traces) or None))
    assert fast == [built(False), built(True)]
