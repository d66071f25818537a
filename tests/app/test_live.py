"""The live panel polls only a run that can move by itself, and redraws the figures it
built while nothing is new; the owner token is in the URL from the landing page on;
names are shown as typed; Compare finds its running experiment again after a reload."""

import dataclasses
import re
import tomllib

import pytest
from streamlit.testing.v1 import AppTest

from app import choices, live, live_figures, services, state
from app.markup import plain
from core import experiments
from core.config import TrainConfig
from core.jobs import PAUSED, RUNNING, Arm, Command
from tests.app.conftest import OWNER, ROOT, TIMEOUT, page
from tests.app.test_build_view import shown as read_as
from tests.core.helpers import separable_data, tiny_spec
from tests.waiting import wait_for

MARKDOWN_NAME = "**bold** [x](http://e)"


@pytest.fixture
def long_run():
    """A run that trains until the test stops it (owned by the test's browser)."""
    mgr = services.job_manager()
    job = mgr.submit(
        OWNER,
        "long",
        [Arm("ResNet-8", tiny_spec("resnet8_narrow"))],
        separable_data(),
        TrainConfig(steps=500_000, batch_size=16, device="cpu"),
    )
    yield job
    mgr.cancel(job, OWNER)
    mgr.wait(job, timeout=60)


def _progress(at) -> list[str]:
    return [p.proto.text for p in at.get("progress")]


def _snapshots(job: str) -> dict:
    return {a: log.snapshot() for a, log in services.job_manager().logs(job, OWNER).items()}


def _device(job: str) -> str:
    return services.job_manager().info(job, OWNER).device


def test_the_landing_page_puts_the_owner_token_in_the_url():
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    token = at.query_params[state.OWNER_PARAM]
    token = token[0] if isinstance(token, list) else token
    assert re.fullmatch("[0-9a-f]{32}", token)
    assert at.session_state[state.OWNER] == token


def test_a_reload_of_the_landing_page_keeps_the_token_of_its_url():
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=TIMEOUT)
    at.query_params[state.OWNER_PARAM] = OWNER
    at.run()
    assert at.session_state[state.OWNER] == OWNER
    token = at.query_params[state.OWNER_PARAM]
    assert (token[0] if isinstance(token, list) else token) == OWNER


def test_a_finished_run_is_not_polled(finished_run, auto_reruns):
    at = page("runs")
    at.session_state[state.RUNS_OPEN] = finished_run
    at.run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 4
    assert auto_reruns == []


def test_a_running_run_is_polled_and_a_paused_one_is_not(long_run, auto_reruns):
    mgr = services.job_manager()
    wait_for(lambda: mgr.info(long_run, OWNER).status == RUNNING, timeout=120, what="start")
    at = page("train")
    at.session_state[state.ACTIVE_JOB] = long_run
    at.run()
    assert not at.exception
    assert auto_reruns == [live.REFRESH_S, live.CHART_REFRESH_S]  # status, then the charts
    assert live.CHART_REFRESH_S > live.REFRESH_S  # drawing costs the training CPU time
    mgr.send(long_run, OWNER, Command("pause"))
    wait_for(lambda: mgr.info(long_run, OWNER).status == PAUSED, timeout=60, what="pause")
    auto_reruns.clear()
    at.run()
    assert not at.exception
    assert auto_reruns == []
    resume = next(b for b in at.button if b.label == "Resume")
    resume.click().run()  # the page waits for the worker, then polls again
    assert not at.exception
    assert mgr.info(long_run, OWNER).status == RUNNING
    assert auto_reruns == [live.REFRESH_S, live.CHART_REFRESH_S]


def test_figures_are_reused_while_the_run_has_no_new_step(finished_run):
    at = page("train")
    at.session_state[state.ACTIVE_JOB] = finished_run
    at.run()
    cache = at.session_state[state.LIVE_CHARTS]["train"]
    drawn = list(cache.drawn)
    assert cache.rebuilt == list(live_figures.NAMES) and len(drawn) == 4
    at.run()
    cache = at.session_state[state.LIVE_CHARTS]["train"]
    assert cache.rebuilt == [] and all(a is b for a, b in zip(cache.drawn, drawn, strict=True))
    at.toggle(key=state.log_scale_key("train")).set_value(True).run()  # the reader's choice
    cache = at.session_state[state.LIVE_CHARTS]["train"]
    assert cache.rebuilt == ["loss"] and cache.drawn[0].layout.yaxis.type == "log"
    assert all(a is b for a, b in zip(cache.drawn[1:], drawn[1:], strict=True))


def test_names_are_shown_as_typed_not_as_markdown():
    mgr = services.job_manager()
    spec = tiny_spec("resnet8_narrow")
    named = dataclasses.replace(spec, name=MARKDOWN_NAME)
    job = mgr.submit(
        OWNER,
        f"{MARKDOWN_NAME} · run",
        [Arm(MARKDOWN_NAME, named)],
        separable_data(),
        TrainConfig(steps=2, batch_size=16, device="cpu"),
    )
    assert mgr.wait(job, timeout=60) == "finished"
    shown = plain(MARKDOWN_NAME)  # each Markdown character escaped: read as typed
    assert read_as(shown) == MARKDOWN_NAME and shown != MARKDOWN_NAME
    train = page("train")
    train.session_state[state.SPEC] = named
    train.session_state[state.ACTIVE_JOB] = job
    train.run()
    assert not train.exception
    assert train.caption[0].value.startswith(f"Network: {shown} (change it on the Build page)")
    took = live.pace(mgr.info(job, OWNER), experiments.training_seconds(_snapshots(job)))
    assert took.startswith(" · ") and took.endswith(" s a step)")  # the run's own clock
    assert _progress(train) == [f"{shown} · run: finished · step 2 of 2{took} · on {_device(job)}"]
    runs = page("runs")
    runs.session_state[state.RUNS_OPEN] = job
    runs.run()
    assert not runs.exception
    assert f"{shown} · run: finished" in _progress(runs)[0]
    labels = [b.label for b in runs.get("download_button")]
    assert f"{shown}: tables (zip of steps, evaluations, events CSV)" in labels
    assert f"{shown}: network (spec JSON)" in labels
    everything = [*runs.markdown, *runs.caption, *train.markdown, *train.caption]
    assert not any(MARKDOWN_NAME in str(m.value) for m in everything)  # never unescaped


def _race(mgr, steps: int) -> str:
    """A plain-vs-residual race of tiny 8-layer nets, as Compare's race tab starts one."""
    plain, res = experiments.race_pair("8 layers, narrow", input_shape=(3, 8, 8), num_classes=2)
    return mgr.submit(
        OWNER,
        f"{experiments.RACE_PREFIX}8 layers, narrow",
        [Arm(plain.name, plain), Arm(res.name, res)],
        separable_data(),
        TrainConfig(steps=steps, batch_size=16, device="cpu"),
    )


def test_compare_finds_its_running_experiment_after_a_reload(long_run):
    mgr = services.job_manager()
    job = _race(mgr, steps=500_000)  # queued behind long_run, or running: active either way
    try:
        at = page("compare")  # a new session: what a reload starts
        at.run()
        assert not at.exception
        assert at.session_state[state.COMPARE_JOB] == job
        assert at.session_state[state.COMPARE_TAB] == choices.LIVE_TAB
        texts = [read_as(t) for t in (*_progress(at), *(str(i.value) for i in at.info))]
        assert any("Race: 8 layers, narrow" in text for text in texts)
    finally:
        mgr.cancel(job, OWNER)
        mgr.wait(job, timeout=60)


def test_compare_states_what_the_gradient_sweep_measured():
    at = page("compare")
    at.session_state[state.INIT_DEPTHS] = [8, 20]
    at.session_state[state.COMPARE_TAB] = choices.INIT_TAB
    at.run()
    assert not at.exception
    found = [m.value for m in at.markdown if str(m.value).startswith("**Measured:**")]
    assert len(found) == 1
    assert found[0].startswith("**Measured:** relu, no BatchNorm, 20 layers: the first layer gets")


def test_compare_says_what_a_finished_race_shows_from_its_numbers():
    mgr = services.job_manager()
    job = _race(mgr, steps=6)
    assert mgr.wait(job, timeout=120) == "finished"
    at = page("compare")
    at.session_state[state.COMPARE_JOB] = job
    at.run()
    assert not at.exception
    said = experiments.race_verdict(_snapshots(job))
    assert said.startswith("ResNet-8 ends ")
    assert f"**Measured:** {said}" in [m.value for m in at.markdown]


def test_a_race_too_short_to_show_the_effect_says_so_before_it_starts():
    at = page("compare")
    at.run()
    assert not at.exception
    assert not [w for w in at.warning if "to show the effect" in str(w.value)]  # the default
    at.selectbox(key=state.RACE_DEPTH).set_value("14 layers, narrow")
    at.number_input(key=state.RACE_STEPS).set_value(100).run()
    assert not at.exception
    warned = [str(w.value) for w in at.warning if "to show the effect" in str(w.value)]
    assert warned == [experiments.too_short(14, 100)]
    at.number_input(key=state.DEGRADATION_STEPS).set_value(50).run()
    warned = [str(w.value) for w in at.warning if "to show the effect" in str(w.value)]
    assert warned[-1] == experiments.too_short(56, 50)


def test_multi_net_runs_are_polled_less_often(finished_run):
    info = services.job_manager().info(finished_run, OWNER)
    one = dataclasses.replace(info, status=RUNNING, arms=("a",))
    four = dataclasses.replace(one, arms=("a", "b", "c", "d"))
    assert (live.refresh_every(one), live.chart_every(one)) == (1.0, live.CHART_REFRESH_S)
    assert live.refresh_every(four) == 4 * live.REFRESH_S
    assert live.chart_every(four) == 4 * live.CHART_REFRESH_S
    paused = dataclasses.replace(four, status=PAUSED)
    assert live.refresh_every(paused) is None and live.chart_every(paused) is None


def test_the_server_does_not_collect_garbage_after_every_poll():
    """Streamlit's default gc.collect() after each fragment run cost the training beside
    it up to a second of the server's CPU per status poll (py-spy of the app's run)."""
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False
    assert config["server"]["fileWatcherType"] == "none"


def test_a_run_whose_disk_refuses_says_so_while_it_trains():
    def script():
        from app import live
        from core.config import TrainConfig
        from core.jobs_api import JobInfo

        live.status_line(
            JobInfo(
                id="r1",
                owner="o",
                name="net",
                status="running",
                message="",
                arms=("a",),
                step=5,
                total_steps=10,
                eta_seconds=3.0,
                images_per_s=100.0,
                queue_position=None,
                device="CPU",
                created=0.0,
                config=TrainConfig(steps=10, device="cpu"),
                not_saved="not being saved: the disk is full; free some space",
            )
        )

    at = AppTest.from_function(script).run()
    assert not at.exception
    assert [w.value for w in at.warning] == ["not being saved: the disk is full; free some space"]
