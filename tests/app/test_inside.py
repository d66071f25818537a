"""The Inside page (AppTest on a finished tiny twin run): each tab computes on a button
press and draws its charts; a rerun copies no network; the overfitting runs are ordinary
runs whose gap the page reads from their logs."""

from __future__ import annotations

import json

import pytest
import torch

from app import services, state
from core.config import TrainConfig
from core.jobs import Arm
from core.overfitting import gap, is_overfitting
from core.presets import PRESETS
from tests.app.conftest import OWNER, page
from tests.core.helpers import separable_data


def _texts(at) -> str:
    return " ".join(
        str(e.value)
        for e in [*at.markdown, *at.caption, *at.info, *at.success, *at.error, *at.warning]
    )


def _open(job: str):
    at = page("inside")
    at.run()
    at.selectbox(key=state.EXPLAIN_RUN).set_value(job).run()
    assert not at.exception, at.exception
    return at


def _kept(at, kind: str, job: str):
    stored = at.session_state[state.EXPLAIN][f"inside_{kind}"]
    assert stored[0] == job
    return stored[1]


@pytest.fixture
def copies(monkeypatch) -> list[str]:
    """Every network the page copies, through the real manager."""
    mgr = services.job_manager()
    real, copied = mgr.copy_model, []

    def counting(job, owner, arm):
        copied.append(arm)
        return real(job, owner, arm)

    monkeypatch.setattr(mgr, "copy_model", counting)
    return copied


def test_lesion_study_on_a_button_press_and_no_copy_on_a_rerun(finished_run, copies):
    at = _open(finished_run)
    at.number_input(key=state.inside_key(state.INSIDE_LESION, "draws")).set_value(2).run()
    assert copies == [] and not at.get("plotly_chart")
    at.button(key=state.inside_key(state.INSIDE_LESION, "go")).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert sorted(copies) == ["Plain-8", "ResNet-8"]
    assert len(at.get("plotly_chart")) == 2  # one block at a time, and the k-curve
    studies, seconds = _kept(at, "lesion", finished_run)
    assert set(studies) == {"Plain-8", "ResNet-8"} and seconds > 0
    plain = studies["Plain-8"]
    assert all(r.how == "identity" for r in plain.removable)
    assert "kept: it changes the shape" in _texts(at)  # the plain twin's kept blocks listed
    at.run()  # a rerun (a download, a tab): redrawn, not recomputed
    assert len(copies) == 2 and len(at.get("plotly_chart")) == 2
    labels = [b.label for b in at.get("download_button")]
    assert labels.count("Data (CSV)") == 2


def test_landscape_2d_and_interpolation_draw_both_nets_on_one_grid(finished_run, copies):
    at = _open(finished_run)
    at.number_input(key=state.inside_key(state.INSIDE_LANDSCAPE, "grid", finished_run)).set_value(3)
    at.number_input(key=state.inside_key(state.INSIDE_LANDSCAPE, "images", finished_run)).set_value(
        32
    ).run()
    at.button(key=state.inside_key(state.INSIDE_LANDSCAPE, "go", "2d")).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(at.get("plotly_chart")) == 2  # contour and surface
    slices, settings, _ = _kept(at, "landscape_2d", finished_run)
    assert set(slices) == {"Plain-8", "ResNet-8"}
    assert {s.alphas for s in slices.values()} == {(-1.0, 0.0, 1.0)}
    at.radio(key=state.inside_key(state.INSIDE_LANDSCAPE, "kind")).set_value("line").run()
    assert len(copies) == 2 and not at.get("plotly_chart")  # nothing for this kind yet
    at.button(key=state.inside_key(state.INSIDE_LANDSCAPE, "go", "line")).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    line, settings, _ = _kept(at, "landscape_line", finished_run)
    assert settings.low == 0.0 and settings.high == 1.0
    assert all(s.alphas[0] == 0.0 and s.alphas[-1] == 1.0 for s in line.values())
    assert len(at.get("plotly_chart")) == 1 and len(copies) == 4


def test_errors_per_class_draws_matrices_and_offers_the_explain_page(finished_run):
    at = _open(finished_run)
    at.button(key=state.inside_key(state.INSIDE_ERRORS, "go")).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    confs, thumbs, _ = _kept(at, "errors", finished_run)
    assert len(at.get("plotly_chart")) == 3  # a matrix per net, and the accuracy per class
    for name, conf in confs.items():
        assert conf.images == 64  # the tiny data's validation split
        assert (thumbs[name] is None) == (not conf.mistakes)
    at.toggle(key=state.inside_key(state.INSIDE_ERRORS, "norm")).set_value(True).run()
    assert not at.exception
    at.button(key=state.inside_key(state.INSIDE_ERRORS, "explain")).click().run()
    assert at.session_state["ex_run"] == finished_run
    assert at.session_state["ex_how"] == "misclassified"


def test_a_refused_computation_is_shown_as_a_readable_error():
    """A net with no residual-kind block has nothing to delete: core's message, no trace."""
    mgr = services.job_manager()
    spec = PRESETS["dense_sigmoid8"].spec(input_shape=(3, 8, 8), num_classes=2)
    config = TrainConfig(steps=2, batch_size=16, device="cpu")
    job = mgr.submit(OWNER, "mlp", [Arm("MLP", spec)], separable_data(), config)
    assert mgr.wait(job, timeout=60) == "finished"
    at = _open(job)
    at.button(key=state.inside_key(state.INSIDE_LESION, "go")).click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "Could not compute the lesion study: lesion study: this network has no block that "
        "can be removed; use a net of basic, bottleneck or dense residual blocks"
    ]
    assert not at.get("plotly_chart")
    mgr.delete(job, OWNER)


def test_overfitting_starts_ordinary_runs_and_reads_the_gap_from_them():
    owner = "ab" * 16
    at = page("inside")
    at.session_state[state.OWNER] = owner
    at.run()
    assert "No runs yet" in _texts(at) and "No overfitting runs" in _texts(at)
    at.number_input(key=state.inside_key(state.INSIDE_OVERFIT, "steps")).set_value(10).run()
    at.button(key=state.inside_key(state.INSIDE_OVERFIT, "go")).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    mgr = services.job_manager()
    runs = [i for i in mgr.list(owner) if is_overfitting(i.name)]
    assert len(runs) == 3
    for info in runs:
        assert mgr.wait(info.id, timeout=120) == "finished"
    at.run()
    assert len(at.get("plotly_chart")) == 1
    expected = {}
    for info in runs:
        for arm, log in mgr.logs(info.id, owner).items():
            g = gap(log.snapshot())
            expected[(info.name.split(": ", 1)[1], arm)] = g
    assert len(expected) == 6 and all(g is not None for g in expected.values())
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    marks = sorted(a["text"] for a in figure["layout"]["annotations"] if "gap" in a["text"])
    assert marks == sorted(f"gap {g.gap * 100:+.1f} points" for g in expected.values())
    for info in runs:
        mgr.delete(info.id, owner)


def test_landscape_defaults_fit_the_nets_into_about_a_minute_on_a_cpu(monkeypatch):
    from app.inside_landscape import defaults

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cifar = [
        PRESETS[k].spec(input_shape=(3, 32, 32), num_classes=10) for k in ("plain20", "resnet20")
    ]
    assert defaults(cifar) == (11, 128)  # 1.5e12 / (121 * 2 * 40.6M mult-adds) = 152 -> 128
    small = [PRESETS["resnet8_narrow"].spec(input_shape=(3, 16, 16), num_classes=10)]
    assert defaults(small) == (11, 256)  # the cap
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert defaults(cifar) == (21, 1024)


def test_the_initial_weights_are_the_runs_own_before_its_first_step(finished_run):
    """The interpolation starts where the run started: the weights `initial_net` rebuilds
    equal those of a real `core.run.Run` built from the same arms and settings, before any
    step (the oracle is the trainer's own construction, not `build`)."""
    from app.inside_run import initial_net
    from core.run import Run

    mgr = services.job_manager()
    info = mgr.info(finished_run, OWNER)
    trained, _ = mgr.copy_model(finished_run, OWNER, "ResNet-8")
    fresh = Run([Arm("ResNet-8", info.specs["ResNet-8"])], separable_data(), info.config)
    expected = fresh.trainers["ResNet-8"].net.state_dict()
    got = initial_net(mgr, OWNER, info, "ResNet-8", trained).state_dict()
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k].cpu(), expected[k].cpu()) for k in got)
    assert not all(torch.equal(got[k], trained.state_dict()[k].cpu()) for k in got)
