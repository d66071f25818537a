"""Unit tests of app/figures.py: traces, axes, event markers, fixed bands, the network
diagram, payload size and empty runs. Pure plotly; no streamlit, no torch training."""

from __future__ import annotations

import dataclasses
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app import diagram, figures, style
from core.analysis import GradFlow, SweepPoint
from core.presets import PRESETS
from core.telemetry import EvalRecord, Event, RunLog, StepRecord

ROOT = Path(__file__).resolve().parents[2]
LAYERS_110 = ("stem", *(f"blocks.{i}" for i in range(54)), "head")  # ResNet-110: 56 rows
MB = 1_000_000


def make_snapshot(
    *,
    steps: int = 50,
    layers: tuple[str, ...] = ("stem", "blocks.0", "blocks.1", "head"),
    norm=None,
    spec=None,
    events=(),
    eval_every: int = 10,
):
    """A RunLog filled directly: loss 2/step, accuracy step/steps, norms from `norm`."""
    log = RunLog(layers, meta={"spec": spec.to_json(indent=None)} if spec else None)
    rng = np.random.default_rng(0)
    for s in range(1, steps + 1):
        g = rng.uniform(0.5, 1.5, len(layers)) if norm is None else np.full(len(layers), norm)
        g = tuple(float(v) for v in g)
        log.append_step(
            StepRecord(
                step=s,
                epoch=s / 10,
                loss=2.0 / s,
                accuracy=s / steps,
                lr=0.1,
                grad_norms=g,
                weight_norms=g,
                update_ratios=g,
            )
        )
        if s % eval_every == 0:
            log.append_eval(EvalRecord(step=s, epoch=s / 10, loss=3.0 / s, accuracy=0.5))
    for e in events:
        log.append_event(e)
    return log.snapshot()


def empty_snapshot():
    return RunLog(("stem", "head")).snapshot()


def annotation_texts(fig) -> list[str]:
    return [a.text for a in fig.layout.annotations]


def shapes_named(fig, prefix: str) -> list:
    return [s for s in fig.layout.shapes if (s.name or "").startswith(prefix)]


def trace(fig, name: str):
    matches = [t for t in fig.data if t.name == name]
    assert len(matches) == 1, [t.name for t in fig.data]
    return matches[0]


def is_orange(colour: str) -> bool:
    r, _, b = style.hex_to_rgb(colour)
    return r > b + 60


def is_blue(colour: str) -> bool:
    r, _, b = style.hex_to_rgb(colour)
    return b > r + 60


@pytest.fixture(scope="module")
def twins():
    """A plain and a residual arm, told apart by the spec in their meta (not by name)."""
    events = (
        Event(20, "skip", "skip off: block 1"),
        Event(30, "lr", "lr = 0.01"),
        Event(35, "pause", "paused"),
    )
    plain = make_snapshot(spec=PRESETS["plain20"].spec(), events=events)
    residual = make_snapshot(spec=PRESETS["resnet20"].spec(), events=events[:1])
    return {"arm A": plain, "arm B": residual}


@pytest.fixture(scope="module")
def resnet110_run():
    """ResNet-110-sized: 56 layers, 5,000 logged steps, an eval every 100 steps."""
    return make_snapshot(steps=5000, layers=LAYERS_110, eval_every=100)


# --- import hygiene ----------------------------------------------------------------------


def test_figures_import_without_streamlit():
    code = (
        "import sys, app.figures, app.style, app.markers, app.exports, app.markup; "
        "assert 'streamlit' not in sys.modules, 'streamlit imported'"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


# --- 1. curves ---------------------------------------------------------------------------


def test_curves_have_train_and_validation_per_arm_in_family_colours(twins):
    fig = figures.curves_figure(twins)
    a_train, a_val = trace(fig, "arm A · train"), trace(fig, "arm A · validation")
    b_train, b_val = trace(fig, "arm B · train"), trace(fig, "arm B · validation")
    assert a_train.line.dash in (None, "solid") and a_val.line.dash == "dash"
    assert "markers" in a_val.mode
    assert is_orange(a_train.line.color) and is_orange(a_val.line.color)  # plain spec
    assert is_blue(b_train.line.color) and is_blue(b_val.line.color)  # residual spec
    np.testing.assert_allclose(a_train.y, 2.0 / np.arange(1, 51))
    assert list(a_val.x) == [10, 20, 30, 40, 50]
    np.testing.assert_allclose(a_val.y, 3.0 / np.array([10, 20, 30, 40, 50]))
    assert fig.layout.xaxis.title.text == "step (optimizer steps)"
    assert "loss" in fig.layout.yaxis.title.text
    assert fig.layout.yaxis.type in (None, "linear", "-")


def test_curves_accuracy_in_percent_and_log_loss_axis(twins):
    acc = figures.curves_figure(twins, "accuracy")
    np.testing.assert_allclose(trace(acc, "arm A · train").y, np.arange(1, 51) / 50 * 100)
    np.testing.assert_allclose(trace(acc, "arm A · validation").y, [50.0] * 5)
    assert "%" in acc.layout.yaxis.title.text
    log = figures.curves_figure(twins, log_y=True)
    assert log.layout.yaxis.type == "log"
    with pytest.raises(ValueError, match="loss' or 'accuracy"):
        figures.curves_figure(twins, "perplexity")


def test_arm_family_falls_back_to_the_name_without_a_spec():
    runs = {"Plain-20": make_snapshot(), "ResNet-20": make_snapshot()}
    fig = figures.curves_figure(runs)
    assert is_orange(trace(fig, "Plain-20 · train").line.color)
    assert is_blue(trace(fig, "ResNet-20 · train").line.color)


def test_skip_and_lr_events_are_lines_and_hover_markers_at_their_step(twins):
    fig = figures.curves_figure(twins)
    skip_lines, lr_lines = shapes_named(fig, "event:skip"), shapes_named(fig, "event:lr")
    assert [s.x0 for s in skip_lines] == [20]  # both arms logged it: drawn once
    assert [s.x0 for s in lr_lines] == [30]
    assert all(s.x0 == s.x1 and s.yref == "paper" for s in skip_lines + lr_lines)
    labels = {a.text: a.x for a in fig.layout.annotations if (a.name or "").startswith("event")}
    assert labels == {"skip off: block 1": 20, "lr = 0.01": 30}
    skip = trace(fig, "skip toggle")
    assert list(skip.x) == [20] and "skip off: block 1" in skip.hovertext[0]
    assert "arm A" in skip.hovertext[0] and "arm B" in skip.hovertext[0]
    lr = trace(fig, "learning-rate change")
    assert list(lr.x) == [30] and "lr = 0.01" in lr.hovertext[0]
    assert not any(35 in (s.x0, s.x1) for s in fig.layout.shapes)  # pause: not drawn
    assert fig.layout.yaxis2.range == (0, 1) and fig.layout.yaxis2.overlaying == "y"


def test_events_two_steps_apart_share_one_label_listing_both():
    events = (
        Event(step=100, kind="skip", detail="skip off: block 1"),
        Event(step=102, kind="lr", detail="lr = 0.01"),
        Event(step=180, kind="skip", detail="skip on: block 1"),
    )
    fig = figures.curves_figure({"r": make_snapshot(steps=200, events=events)})
    labels = [a for a in fig.layout.annotations if (a.name or "").startswith("event")]
    assert [(a.x, a.text) for a in labels] == [
        (100, "skip off: block 1<br>lr = 0.01"),  # one label, both texts, never overlapping
        (180, "skip on: block 1"),
    ]
    assert len(shapes_named(fig, "event:skip")) == 2 and len(shapes_named(fig, "event:lr")) == 1
    assert list(trace(fig, "learning-rate change").x) == [102]  # its own marker to hover


def test_fold_labels_groups_by_distance_from_the_groups_first_event():
    from app.markers import fold_labels

    steps = [(1, "a"), (3, "b"), (5, "c"), (9, "d")]
    assert fold_labels(steps, gap=5) == [(1, ["a", "b", "c"]), (9, ["d"])]
    assert fold_labels(steps, gap=2) == [(1, ["a"]), (3, ["b"]), (5, ["c"]), (9, ["d"])]


def test_curves_downsample_to_bucket_means(resnet110_run):
    fig = figures.curves_figure({"r": resnet110_run}, max_points=100)
    train = trace(fig, "r · train")
    assert len(train.x) == 79  # buckets of 64 steps (core.downsample), the last of 8
    assert train.x[0] == 64 and train.x[-1] == 5000  # bucket ends
    assert train.y[0] == pytest.approx(np.mean(2.0 / np.arange(1, 65)))  # a mean, not a pick
    assert len(trace(fig, "r · validation").x) == 50  # few: kept whole
    thinned = figures.curves_figure({"r": resnet110_run}, max_points=20)
    assert len(trace(thinned, "r · validation").x) == 20


# --- 2. gradient norm over depth ---------------------------------------------------------


def test_grad_depth_is_the_latest_or_chosen_record_over_layers(twins):
    fig = figures.grad_depth_figure(twins)
    a = trace(fig, "arm A")
    assert list(a.x) == ["stem", "blocks.0", "blocks.1", "head"]
    np.testing.assert_allclose(a.y, twins["arm A"].steps[-1].grad_norms)
    assert fig.layout.yaxis.type == "log"
    assert "norm" in fig.layout.yaxis.title.text and "input" in fig.layout.xaxis.title.text
    assert list(fig.layout.xaxis.categoryarray) == ["stem", "blocks.0", "blocks.1", "head"]
    at = figures.grad_depth_figure(twins, step=17)
    np.testing.assert_allclose(trace(at, "arm A").y, twins["arm A"].steps[16].grad_norms)
    assert "17" in at.layout.title.text
    assert is_orange(trace(fig, "arm A").line.color) and is_blue(trace(fig, "arm B").line.color)


def test_grad_depth_of_nets_of_different_depth_shares_a_relative_depth_axis():
    shallow = make_snapshot(layers=("stem", "blocks.0", "head"))
    deep = make_snapshot(layers=LAYERS_110)
    fig = figures.grad_depth_figure({"ResNet-8": shallow, "ResNet-110": deep})
    a, b = trace(fig, "ResNet-8"), trace(fig, "ResNet-110")
    np.testing.assert_allclose(a.x, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(b.x, np.linspace(0, 1, 56))
    assert list(b.hovertext) == list(LAYERS_110)  # the layer names stay in the hover
    assert fig.layout.xaxis.type != "category"
    assert fig.layout.xaxis.title.text.startswith("relative depth (0 = input side")


def test_grad_depth_leaves_a_gap_for_zero_norms():
    fig = figures.grad_depth_figure({"dead": make_snapshot(norm=0.0)})
    assert np.isnan(np.asarray(trace(fig, "dead").y, dtype=float)).all()


def test_a_zero_gradient_is_marked_at_the_axis_floor_with_hover_text():
    live = make_snapshot(layers=("stem", "blocks.0", "head"))
    log = RunLog(("stem", "blocks.0", "head"))
    log.append_step(dataclasses.replace(live.steps[-1], grad_norms=(0.5, 0.0, float("nan"))))
    fig = figures.grad_depth_figure({"dead": log.snapshot(), "live": live})
    marks = trace(fig, "dead: not drawable")
    assert list(marks.x) == ["blocks.0", "head"]  # exactly the two values a log axis hides
    assert marks.hovertext[0] == "dead, blocks.0: 0 (too small to plot)"
    assert "nan" in marks.hovertext[1]
    smallest = min(min(t.y) for t in fig.data if t.mode == "lines+markers" and t.name == "live")
    assert marks.y[0] == marks.y[1] and 0 < marks.y[0] < min(smallest, 0.5) / 5  # the floor
    assert [s.y0 for s in fig.layout.shapes if s.name == "axis floor"] == [marks.y[0]]
    assert not any(t.name.endswith("not drawable") for t in fig.data if t.name.startswith("live"))


# --- 3. heatmap --------------------------------------------------------------------------


def band_colour(heatmap, z: float) -> str:
    """The colour the trace's own colorscale gives `z` (stepped scale: read its segments)."""
    t = (z - heatmap.zmin) / (heatmap.zmax - heatmap.zmin)
    scale = heatmap.colorscale
    for (lo, colour), (hi, _) in zip(scale[::2], scale[1::2], strict=True):
        if lo <= t <= hi:
            return colour
    raise AssertionError(f"{z} is outside the colour scale")


def band_name_colour(name_start: str) -> str:
    return next(colour for name, *_, colour in style.BANDS if name.startswith(name_start))


def test_heatmap_bands_are_fixed_and_independent_of_the_data():
    tiny = figures.grad_heatmap(make_snapshot(norm=1e-6)).data[0]
    huge = figures.grad_heatmap(make_snapshot(norm=100.0)).data[0]
    assert (tiny.zmin, tiny.zmax) == (huge.zmin, huge.zmax)
    assert tiny.zauto is False and huge.zauto is False
    assert tiny.colorscale == huge.colorscale
    assert list(tiny.colorbar.ticktext) == [name for name, *_ in style.BANDS]
    z_tiny, z_huge = np.asarray(tiny.z), np.asarray(huge.z)
    assert {band_colour(tiny, z) for z in z_tiny.ravel()} == {band_name_colour("vanishing")}
    assert {band_colour(huge, z) for z in z_huge.ravel()} == {band_name_colour("exploding")}


@pytest.mark.parametrize(
    ("norm", "band"),
    [(0.0, "vanishing"), (5e-5, "vanishing"), (1e-3, "weak"), (0.5, "healthy"), (1e3, "exploding")],
)
def test_heatmap_band_edges(norm, band):
    heat = figures.grad_heatmap(make_snapshot(norm=norm)).data[0]
    z = np.asarray(heat.z)
    assert np.isfinite(z).all()  # log10(0) handled
    assert band_colour(heat, float(z[0, 0])) == band_name_colour(band)
    assert style.band_of(norm).startswith(band)


def test_heatmap_rows_are_layers_input_at_the_bottom_and_events_are_drawn(twins):
    fig = figures.grad_heatmap(twins["arm A"])
    heat = fig.data[0]
    assert list(heat.y) == ["stem", "blocks.0", "blocks.1", "head"]  # first row is drawn lowest
    assert "input at the bottom" in fig.layout.yaxis.title.text
    assert np.asarray(heat.z).shape == (4, 50)
    assert [s.x0 for s in shapes_named(fig, "event:skip")] == [20]
    assert [s.x0 for s in shapes_named(fig, "event:lr")] == [30]


# --- payload and bounds ------------------------------------------------------------------


def test_resnet110_run_stays_light_and_bounded(resnet110_run):
    runs = {"Plain-110": resnet110_run, "ResNet-110": resnet110_run}
    curves = figures.curves_figure(runs, max_points=400)
    heat = figures.grad_heatmap(resnet110_run, max_points=200)
    depth = figures.grad_depth_figure(runs)
    for fig in (curves, heat, depth):
        assert figures.figure_bytes(fig) < MB
    assert all(len(t.x) <= 400 for t in curves.data)
    assert np.asarray(heat.data[0].z).shape == (56, 157)  # buckets of 32 steps
    assert len(heat.data[0].x) == 157
    assert all(len(t.x) == 56 for t in depth.data)
    # The bound is real: every step would be several times heavier.
    assert figures.figure_bytes(figures.grad_heatmap(resnet110_run, max_points=5000)) > 5 * (
        figures.figure_bytes(heat)
    )


def test_figure_bytes_is_the_json_size():
    fig = figures.curves_figure({"a": make_snapshot()})
    assert figures.figure_bytes(fig) == len(fig.to_json().encode())
    json.loads(fig.to_json())


# --- empty runs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: figures.curves_figure({"a": empty_snapshot(), "b": empty_snapshot()}),
        lambda: figures.curves_figure({}),
        lambda: figures.grad_depth_figure({"a": empty_snapshot()}),
        lambda: figures.grad_heatmap(empty_snapshot()),
    ],
)
def test_empty_run_says_it_is_waiting(make):
    fig = make()
    assert len(fig.data) == 0
    assert any("waiting for the first step" in t.lower() for t in annotation_texts(fig))
    json.loads(fig.to_json())


def test_empty_experiments_say_what_to_do():
    assert "experiment" in annotation_texts(figures.grad_flow_figure([]))[0]
    assert "sweep" in annotation_texts(figures.sweep_figure([]))[0]


# --- 4. network diagram ------------------------------------------------------------------


def skip_arcs(fig) -> dict[str, object]:
    return {s.name.split(":", 1)[1]: s for s in shapes_named(fig, "skip-")}


def test_diagram_resnet20_one_box_per_layer_one_solid_arc_per_residual_block():
    plan = PRESETS["resnet20"].spec().validate()
    fig = diagram.network_diagram(plan)
    boxes = shapes_named(fig, "box:")
    assert [b.name for b in boxes] == [f"box:{layer.name}" for layer in plan.layers]
    arcs = skip_arcs(fig)
    assert sorted(arcs) == sorted(layer.name for layer in plan.blocks if layer.skip is not None)
    assert len(arcs) == 9
    assert all(s.name.startswith("skip-on:") for s in arcs.values())
    assert {s.line.color for s in arcs.values()} == {diagram.SKIP_ON["color"]}
    assert all(s.line.dash in (None, "solid") for s in arcs.values())
    texts = annotation_texts(fig)
    assert "stem · 16x32x32 · 464" in texts  # 3*16*9 weights + BN (2*16)
    assert texts.count("pad") == 2  # the two stage changes use zero-pad (option A)
    assert "1x1" not in texts
    hover = next(t for t in fig.data if t.name == "layers").hovertext
    assert any("blocks.3" in h and "zero-pad" in h for h in hover)
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert any("skip on" in n for n in legend) and any("skip off" in n for n in legend)


def test_diagram_plain_twin_has_dashed_grey_arcs():
    plan = PRESETS["plain20"].spec().validate()
    arcs = skip_arcs(diagram.network_diagram(plan))
    assert len(arcs) == 9
    assert all(s.name.startswith("skip-off:") for s in arcs.values())
    assert {(s.line.color, s.line.dash) for s in arcs.values()} == {(style.GREY, "dash")}


def test_diagram_mixed_skips_and_projection_labels():
    spec = PRESETS["resnet20"].spec()
    blocks = list(spec.blocks)
    blocks[1] = dataclasses.replace(blocks[1], skip=False)
    arcs = skip_arcs(diagram.network_diagram(dataclasses.replace(spec, blocks=blocks).validate()))
    assert arcs["blocks.1"].name.startswith("skip-off:")
    assert arcs["blocks.0"].name.startswith("skip-on:")

    resnet18 = PRESETS["resnet18_imagenet"].spec().validate()
    fig = diagram.network_diagram(resnet18)
    projections = [layer.name for layer in resnet18.blocks if layer.shortcut == "projection"]
    assert len(projections) == 3
    labelled = [a.name.split(":", 1)[1] for a in fig.layout.annotations if a.text == "1x1"]
    assert labelled == projections


def test_diagram_without_residual_blocks_has_no_arcs_and_no_arc_legend():
    plan = PRESETS["dense_sigmoid8"].spec().validate()
    fig = diagram.network_diagram(plan)
    assert len(shapes_named(fig, "box:")) == len(plan.layers)
    assert skip_arcs(fig) == {}
    assert not [t for t in fig.data if t.showlegend]


def test_diagram_of_resnet110_wraps_into_columns_without_overlap():
    plan = PRESETS["resnet110"].spec().validate()
    fig = diagram.network_diagram(plan)
    boxes = shapes_named(fig, "box:")
    assert len(boxes) == 56 and len(skip_arcs(fig)) == 54
    columns = {b.x0 for b in boxes}
    assert len(columns) == 3  # at most 20 rows each
    (x_lo, x_hi), (y_lo, y_hi) = fig.layout.xaxis.range, fig.layout.yaxis.range
    for b in boxes:
        assert x_lo <= b.x0 < b.x1 <= x_hi and y_lo <= b.y0 < b.y1 <= y_hi
    spans = sorted((b.x0, b.y0, b.y1) for b in boxes)
    for (xa, _, top_a), (xb, bottom_b, _) in itertools.pairwise(spans):
        assert xa != xb or top_a < bottom_b  # same column: no overlap
    assert fig.layout.height > 20 * 40  # tall enough to read every row


def test_format_count():
    assert [diagram.format_count(n) for n in (650, 9248, 16000, 269_722, 1_600_000)] == [
        "650",
        "9.2k",
        "16k",
        "270k",
        "1.6M",
    ]


# --- 5. gradient flow at init ------------------------------------------------------------


def flow(name: str, n: int, first: float) -> GradFlow:
    return GradFlow(name, tuple(f"l{i}" for i in range(n)), tuple(np.geomspace(first, 1, n)))


def test_grad_flow_shares_a_relative_depth_axis():
    flows = [flow("Plain-8", 5, 1e-2), flow("Plain-20", 11, 1e-4), flow("ResNet-20", 11, 0.1)]
    flows.append(GradFlow("ResNet-8", ("a", "b", "c"), (0.0, 0.5, 1.0)))
    fig = figures.grad_flow_figure(flows)
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == ["Plain-8", "Plain-20", "ResNet-20", "ResNet-8"]
    for t, f in zip(lines, flows, strict=True):
        assert t.x[0] == 0.0 and t.x[-1] == 1.0 and len(t.x) == len(f.norms)
    assert np.isnan(lines[3].y[0])  # a zero norm is a gap in the line on the log axis...
    zero = trace(fig, "ResNet-8: not drawable")  # ...and a mark at the floor says so
    assert list(zero.x) == [0.0] and zero.y[0] < 1e-4  # below every drawn norm
    assert zero.hovertext == ("ResNet-8, a: 0 (too small to plot)",)
    assert fig.layout.yaxis.type == "log"
    assert "0 = input" in fig.layout.xaxis.title.text
    plain8, plain20, res20, _ = (t.line.color for t in lines)
    assert is_orange(plain8) and is_orange(plain20) and is_blue(res20)
    assert plain8 != plain20  # depth shades within the family


# --- 6. depth sweep ----------------------------------------------------------------------


def test_sweep_one_line_per_variant_plain_and_residual_distinct():
    points = [
        SweepPoint(depth, res, bn, act, flow("x", depth, first))
        for depth, first in ((8, 1e-2), (20, 1e-4))
        for res in (False, True)
        for bn in (True, False)
        for act in ("relu", "sigmoid")
    ]
    fig = figures.sweep_figure(points)
    assert len(fig.data) == 8
    t = trace(fig, "plain · BN · relu")
    assert list(t.x) == [8, 20]
    expected = [f.norms[0] / f.norms[-2] for f in (flow("x", 8, 1e-2), flow("x", 20, 1e-4))]
    np.testing.assert_allclose(t.y, expected)  # first layer over last block (not the head)
    plain = [t for t in fig.data if t.name.startswith("plain")]
    residual = [t for t in fig.data if t.name.startswith("residual")]
    assert all(is_orange(t.line.color) for t in plain)
    assert all(is_blue(t.line.color) for t in residual)
    assert {t.marker.symbol for t in plain}.isdisjoint({t.marker.symbol for t in residual})
    assert fig.layout.yaxis.type == "log"
    assert "depth" in fig.layout.xaxis.title.text
