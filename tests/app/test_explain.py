"""The Explain page (AppTest, jumped to a finished twin run through session_state) and the
pure functions behind it: the attribution grid, tables, files, sanity curves."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from app import attribution_figures as af
from app import attribution_tables as tables
from app import services, state
from core.attribution import AttributionRequest, AttributionResult
from core.attribution_quality import (
    CONTROLS,
    Localisation,
    LocalisationRow,
    SanityCurve,
    SanityReport,
)
from core.config import TrainConfig
from core.data import DataRequest
from core.jobs import Arm
from core.presets import PRESETS
from tests.app.conftest import OWNER, page
from tests.core.helpers import separable_data, tiny_spec


def _texts(at) -> str:
    return " ".join(
        str(e.value)
        for e in [*at.markdown, *at.caption, *at.info, *at.success, *at.error, *at.warning]
    )


def _explain(at, job: str, method: str = "saliency", k: int = 2):
    at.run()
    at.selectbox(key=state.EXPLAIN_RUN).set_value(job).run()
    at.selectbox(key=state.EXPLAIN_METHOD).set_value(method).run()
    at.slider(key=state.EXPLAIN_K).set_value(k)
    at.button(key=state.EXPLAIN_GO).click().run()
    return at


# --- the page ----------------------------------------------------------------------------


def test_default_render_lists_the_run_and_offers_the_methods(finished_run):
    at = page("explain")
    at.run()
    assert not at.exception, at.exception
    assert any(
        o.startswith(f"{finished_run} · tiny twin")
        for o in at.selectbox(key=state.EXPLAIN_RUN).options
    )
    assert not at.error
    assert "Saliency" in at.selectbox(key=state.EXPLAIN_METHOD).options
    assert "no object masks" in _texts(at)  # the tiny data has none: localisation says so


def test_saliency_of_two_images_draws_both_nets_side_by_side(finished_run):
    at = _explain(page("explain"), finished_run)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    table = at.dataframe[0].value
    assert len(table) == 2
    assert {"Plain-8 · top 3", "ResNet-8 · top 3"} <= set(table.columns)
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Plain-8 · .npy", "ResNet-8 · .npy", "All maps · CSV"]
    assert "camera button" in _texts(at)


def test_integrated_gradients_shows_its_completeness_delta(finished_run):
    at = _explain(page("explain"), finished_run, method="integrated_gradients")
    assert not at.exception and not at.error
    assert "Completeness" in _texts(at)
    deltas = at.dataframe[1].value
    assert {"Plain-8 · delta", "ResNet-8 · delta"} <= set(deltas.columns)
    assert (deltas["ResNet-8 · gap %"] < 10).all()  # 50 steps on a tiny net


def test_gradcam_offers_only_conv_and_residual_blocks(finished_run):
    at = page("explain")
    at.run()
    at.selectbox(key=state.EXPLAIN_RUN).set_value(finished_run).run()
    at.selectbox(key=state.EXPLAIN_METHOD).set_value("gradcam").run()
    block = at.selectbox(key=state.EXPLAIN_BLOCK)
    assert block.options == ["the last conv block", "0 · basic", "1 · basic", "2 · basic"]
    block.set_value(1)
    at.slider(key=state.EXPLAIN_K).set_value(2)
    at.button(key=state.EXPLAIN_GO).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "GradCAM (block 1)" in at.get("plotly_chart")[0].proto.spec


def test_a_running_run_is_refused_with_a_readable_message(finished_run):
    mgr = services.job_manager()
    job = mgr.submit(
        OWNER,
        "long run",
        [Arm("ResNet-8", tiny_spec("resnet8_narrow"))],
        separable_data(),
        TrainConfig(steps=100_000, batch_size=16),
    )
    try:
        at = page("explain")
        at.run()
        at.selectbox(key=state.EXPLAIN_RUN).set_value(job).run()
        assert not at.exception
        message = at.warning[0].value
        assert message.startswith("long run is ") and "pause it or let it finish first" in message
        assert not at.get("plotly_chart")
    finally:
        mgr.cancel(job, OWNER)
        assert mgr.wait(job, timeout=30) in ("stopped", "cancelled")


def test_sanity_check_draws_a_curve_per_net(finished_run):
    at = page("explain")
    at.run()
    at.selectbox(key=state.EXPLAIN_RUN).set_value(finished_run).run()
    at.multiselect(key=f"{state.EXPLAIN_SANITY}_methods").set_value(["saliency", "guided_backprop"])
    at.slider(key=f"{state.EXPLAIN_SANITY}_n").set_value(2)
    at.button(key=f"{state.EXPLAIN_SANITY}_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    charts = [c for c in at.get("plotly_chart") if "Sanity check" in c.proto.spec]
    assert len(charts) == 2  # plain and residual, side by side


def test_localisation_on_shapes_compares_the_nets():
    mgr = services.job_manager()
    data = services.dataset(DataRequest(name="shapes", size=16, n=120))
    arms = [
        Arm("Plain-8", tiny_spec("plain8_narrow", size=16, classes=6)),
        Arm("ResNet-8", tiny_spec("resnet8_narrow", size=16, classes=6)),
    ]
    job = mgr.submit(OWNER, "shapes twin", arms, data, TrainConfig(steps=4, batch_size=16))
    assert mgr.wait(job, timeout=60) == "finished"
    at = page("explain")
    at.run()
    at.selectbox(key=state.EXPLAIN_RUN).set_value(job).run()
    at.multiselect(key=f"{state.EXPLAIN_LOCALISATION}_methods").set_value(["saliency", "gradcam"])
    at.slider(key=f"{state.EXPLAIN_LOCALISATION}_n").set_value(8)
    at.button(key=f"{state.EXPLAIN_LOCALISATION}_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    assert list(table["method"]) == ["Saliency", "GradCAM (last conv block)"]
    assert {"on object % · Plain-8", "pointing % · ResNet-8"} <= set(table.columns)
    mgr.delete(job, OWNER)


def test_a_rerun_copies_no_network_and_a_computation_copies_only_the_chosen_ones(
    finished_run, monkeypatch
):
    """Issue 9: copying a network holds the job manager's lock and stalls every chart; the
    page learns classes, shapes and blocks from JobInfo and copies on a button press only."""
    mgr = services.job_manager()
    real, copied = mgr.copy_model, []

    def counting(job, owner, arm):
        copied.append(arm)
        return real(job, owner, arm)

    monkeypatch.setattr(mgr, "copy_model", counting)  # the real manager, counted
    at = page("explain")
    at.run()
    at.selectbox(key=state.EXPLAIN_RUN).set_value(finished_run).run()
    at.selectbox(key=state.EXPLAIN_METHOD).set_value("gradcam").run()  # blocks: from the specs
    assert at.selectbox(key=state.EXPLAIN_BLOCK).options[1] == "0 · basic"
    at.selectbox(key=state.EXPLAIN_METHOD).set_value(
        "occlusion"
    ).run()  # window: from the input shape
    assert at.slider(key=state.window_key(8)).max == 8
    at.selectbox(key=state.EXPLAIN_METHOD).set_value("saliency").run()
    at.multiselect(key=f"{state.EXPLAIN_SANITY}_methods").set_value(["saliency"]).run()
    assert copied == [] and not at.exception
    at.slider(key=state.EXPLAIN_K).set_value(2)
    at.button(key=state.EXPLAIN_GO).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert sorted(copied) == ["Plain-8", "ResNet-8"]  # one copy per network, on the click
    at.toggle(key=state.EXPLAIN_PER_IMAGE).set_value(True).run()
    at.run()
    assert len(copied) == 2 and len(at.get("plotly_chart")) == 1  # redrawn, not recomputed
    at.multiselect(key=f"ex_nets_{finished_run}").set_value(["ResNet-8"]).run()
    assert len(copied) == 2
    at.button(key=state.EXPLAIN_GO).click().run()
    assert copied[2:] == ["ResNet-8"]  # only the network still chosen


def test_a_stopped_computation_is_reported_once(finished_run):
    at = page("explain")
    at.session_state[state.EXPLAIN_PENDING] = "the sanity check"
    at.run()
    assert "Stopped computing the sanity check" in _texts(at)
    at.run()
    assert "Stopped computing" not in _texts(at)


def test_another_browser_sees_no_runs(finished_run):
    at = page("explain")
    at.session_state[state.OWNER] = "e" * 32
    at.run()
    assert not at.exception
    assert "No runs yet in this browser" in _texts(at)


# --- the grid and its tables -------------------------------------------------------------


def _result(maps: torch.Tensor, method: str = "saliency", delta=None) -> AttributionResult:
    n = len(maps)
    probs = torch.tensor([[0.7, 0.2, 0.1]] * n)
    return AttributionResult(
        request=AttributionRequest(method=method),
        maps=maps,
        raw=maps[:, None],
        targets=torch.zeros(n, dtype=torch.int64),
        probabilities=probs,
        delta=delta,
        gradcam_block=None,
        seconds_per_image=0.01,
    )


CLASSES = ("circle", "square", "ring")


def test_grid_has_an_image_and_a_map_per_net_on_one_shared_scale():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 3, 6, 6, generator=g)
    plain = _result(torch.randn(3, 6, 6, generator=g))
    residual = _result(5 * torch.randn(3, 6, 6, generator=g))  # larger: sets the scale
    fig = af.attribution_grid(images, {"Plain-8": plain, "ResNet-8": residual}, CLASSES)
    assert len(fig.data) == 3 * (1 + 2)
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(heat) == 6 and sum(t.type == "image" for t in fig.data) == 3
    top = float(residual.maps.abs().max())
    assert len({(t.zmin, t.zmax) for t in heat}) == 1  # every net, every image: one scale
    assert (heat[0].zmin, heat[0].zmax) == pytest.approx((-top, top))  # signed: symmetric
    assert sum(bool(t.showscale) for t in heat) == 1  # one colour bar for all
    assert len(fig.layout.images) == 6  # the grey image under every map
    assert "Plain-8: circle 70%" in [a.text for a in fig.layout.annotations]


def test_grid_per_image_scale_is_shared_by_the_nets_and_unsigned_starts_at_zero():
    images = torch.zeros(2, 1, 4, 4)
    a = _result(torch.stack([torch.full((4, 4), 1.0), torch.full((4, 4), 2.0)]))
    b = _result(torch.stack([torch.full((4, 4), 3.0), torch.full((4, 4), 0.5)]))
    fig = af.attribution_grid(images, {"a": a, "b": b}, CLASSES, per_image=True)
    ranges = [(t.zmin, t.zmax) for t in fig.data if t.type == "heatmap"]
    assert ranges == [(0, 3.0), (0, 3.0), (0, 2.0), (0, 2.0)]
    assert not any(t.showscale for t in fig.data if t.type == "heatmap")


def test_grid_refuses_maps_that_do_not_fit_the_images():
    with pytest.raises(ValueError, match="maps are"):
        af.attribution_grid(torch.zeros(2, 3, 4, 4), {"a": _result(torch.zeros(2, 5, 5))}, CLASSES)


def test_tables_and_files():
    maps = torch.arange(2 * 2 * 3, dtype=torch.float32).reshape(2, 2, 3)
    ig = _result(maps, "integrated_gradients", delta=torch.tensor([0.5, -0.1]))
    rows = tables.probability_rows(
        {"net": ig}, CLASSES, labels=torch.tensor([0, 2]), indices=[4, 9]
    )
    assert rows[1] == {
        "image": 9,
        "true class": "ring",
        "net · top 3": "circle 70% · square 20% · ring 10%",
        "net · map explains": "circle",
    }
    deltas = tables.delta_rows({"net": ig}, indices=[4, 9])
    assert deltas[0]["net · f(x) − f(baseline)"] == 14.5  # sum of map (0 + ... + 5) - delta
    assert deltas[0]["net · gap %"] == pytest.approx(100 * 0.5 / 14.5, abs=0.1)
    assert tables.delta_rows({"net": _result(maps)}) == []
    back = np.load(io.BytesIO(tables.maps_npy(ig)))
    assert back.dtype == np.float32 and np.array_equal(back, maps.numpy())
    lines = tables.maps_csv({"net": ig}, CLASSES, indices=[4, 9]).splitlines()
    assert lines[0] == "network,image,class_explained,row,col,value"
    assert len(lines) == 1 + 12 and lines[-1] == "net,9,circle,1,2,11"


def test_localisation_rows_put_the_nets_side_by_side():
    def row(model, method, share, hit):
        score = Localisation(
            share_inside=share, hit_rate=hit, mask_area=0.25, images=8, without_positive=0
        )
        return LocalisationRow(model=model, method=method, score=score, seconds_per_image=0.1)

    rows = tables.localisation_rows(
        [row("Plain", "Saliency", 0.5, 0.75), row("ResNet", "Saliency", 0.625, float("nan"))]
    )
    assert rows == [
        {
            "method": "Saliency",
            "on object % · Plain": 50.0,
            "on object % · ResNet": 62.5,
            "pointing % · Plain": 75.0,
            "pointing % · ResNet": None,
            "chance %": 25.0,
        }
    ]


def test_sanity_figure_draws_a_line_per_method_and_flags_the_independent_ones():
    control = next(iter(CONTROLS))
    report = SanityReport(
        stages=("original", "head", "block 0", "stem"),
        curves=(
            SanityCurve(
                method="Saliency",
                correlation=(1.0, 0.6, 0.2, -0.3),
                depends_on_model=True,
                seconds_per_image=0.01,
            ),
            SanityCurve(
                method="Guided Backprop",
                correlation=(1.0, 0.95, 0.9, 0.8),
                depends_on_model=False,
                seconds_per_image=0.01,
            ),
            SanityCurve(
                method=control,
                correlation=(1.0, 1.0, 1.0, 1.0),
                depends_on_model=False,
                seconds_per_image=0.01,
            ),
        ),
        threshold=0.7,
    )
    fig = af.sanity_figure(report, title="Sanity check · ResNet-8")
    names = [t.name for t in fig.data]
    assert names == ["Saliency", "Guided Backprop ⚠ ignores the model", control]  # the control
    assert list(fig.data[0].x) == list(report.stages)  # is meant to: not flagged, dotted grey
    assert fig.data[2].line.dash == "dot" and fig.data[2].line.color == "#8C8C8C"
    assert fig.layout.yaxis.range[0] < -0.3
    assert any(s.y0 == 0.7 for s in fig.layout.shapes)  # the threshold line


def test_sanity_figure_adds_the_non_black_score_only_where_pixels_are_black():
    control = next(iter(CONTROLS))
    curves = (
        SanityCurve(
            method="Integrated Gradients",
            correlation=(1.0, 0.9, 0.88),
            depends_on_model=False,
            seconds_per_image=0.01,
            correlation_nonzero=(1.0, 0.5, 0.4),
            depends_on_model_nonzero=True,
        ),
        SanityCurve(
            method=control,
            correlation=(1.0, 1.0, 1.0),
            depends_on_model=False,
            seconds_per_image=0.01,
            correlation_nonzero=(1.0, 1.0, 1.0),
            depends_on_model_nonzero=False,
        ),
    )
    stages = ("original", "head", "stem")
    black = af.sanity_figure(
        SanityReport(stages=stages, curves=curves, threshold=0.7, black_share=0.3)
    )
    names = [t.name for t in black.data]
    assert names == [
        "Integrated Gradients ⚠ ignores the model",
        "Integrated Gradients · non-black pixels",
        control,  # the control's score needs no second line
    ]
    assert list(black.data[1].y) == [1.0, 0.5, 0.4] and black.data[1].line.dash == "longdash"
    assert black.data[1].line.color == black.data[0].line.color
    none = af.sanity_figure(SanityReport(stages=stages, curves=curves, threshold=0.7))
    assert len(none.data) == 2


def test_sanity_check_on_digits_explains_what_black_pixels_do():
    mgr = services.job_manager()
    data = services.dataset(DataRequest(name="digits"))
    spec = PRESETS["resnet8_narrow"].spec(input_shape=(1, 8, 8), num_classes=10)
    arms = [Arm("ResNet-8", spec)]
    config = TrainConfig(steps=30, batch_size=64, device="cpu", precision="fp32")
    job = mgr.submit(OWNER, "digits", arms, data, config)
    assert mgr.wait(job, timeout=60) == "finished"
    try:
        at = page("explain")
        at.run()
        at.selectbox(key=state.EXPLAIN_RUN).set_value(job).run()
        at.multiselect(key=f"{state.EXPLAIN_SANITY}_methods").set_value(["integrated_gradients"])
        at.slider(key=f"{state.EXPLAIN_SANITY}_n").set_value(2)
        at.button(key=f"{state.EXPLAIN_SANITY}_go").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        note = next(c.value for c in at.caption if "exactly black" in c.value)
        assert "multiply by the input" in note and "Adebayo et al. (2018)" in note
        chart = next(c for c in at.get("plotly_chart") if "Sanity check" in c.proto.spec)
        assert "non-black pixels" in chart.proto.spec
    finally:
        mgr.delete(job, OWNER)
