"""services.submit: the one path from a page to a queued run, and the one place its
refusals are caught, each as a readable line."""

from app import services
from core import experiments
from core.config import TrainConfig
from core.data import DataRequest
from core.spec import NetSpec, PoolSpec
from tests.app.conftest import OWNER
from tests.core.helpers import tiny_spec

DIGITS = DataRequest(name="digits", size=16)


def test_submit_fits_each_net_to_the_data_and_queues_the_run():
    plain, res = experiments.race_pair("8 layers, narrow")  # made for 3x16x16, 10 classes
    config = TrainConfig(steps=2, batch_size=32, device="cpu")
    started = services.submit(OWNER, "two", [plain, res], DIGITS, config)
    assert started.error is None
    mgr = services.job_manager()
    info = mgr.info(started.job, OWNER)
    assert info.arms == ("Plain-8", "ResNet-8")
    assert {s.input_shape for s in info.specs.values()} == {(1, 16, 16)}  # digits: grey
    assert mgr.wait(started.job, timeout=120) == "finished"


def test_submit_says_why_a_net_does_not_fit():
    spec = NetSpec(name="pools", input_shape=(3, 32, 32), num_classes=10, blocks=(PoolSpec(),) * 5)
    started = services.submit(OWNER, "x", [spec], DIGITS, TrainConfig(steps=2, device="cpu"))
    assert started.job is None
    assert started.error.startswith("pools does not fit 1x16x16 images (block 4:")


def test_submit_checks_the_settings_against_the_data():
    config = TrainConfig(epochs=1, batch_size=4096, device="cpu")
    started = services.submit(OWNER, "x", [tiny_spec()], DIGITS, config)
    assert started.job is None
    assert "the batch size 4096 is larger than the" in started.error
    assert "training images; use a batch size of at most" in started.error


def test_submit_without_data_asks_for_the_upload():
    started = services.submit(OWNER, "x", [tiny_spec()], None, TrainConfig(device="cpu"))
    assert started == services.Started(error="upload a zip of class folders first")


def test_submit_counts_runs_per_client_address_whatever_the_token(monkeypatch):
    """Two runs from one address fill its cap of 2: a third from a fresh `?me=` token is
    refused, one from another computer is not (the thread manager: nothing is spawned)."""
    from core.jobs import LocalJobManager
    from core.scheduling import Policy

    mgr = LocalJobManager(max_running=1, threads_per_job=1, policy=Policy(max_per_client=2))
    monkeypatch.setattr(services, "_manager", mgr)
    long = TrainConfig(steps=100_000, batch_size=16, device="cpu")
    here, there = "198.51.100.7", "198.51.100.8"
    jobs = [
        services.submit(f"tab-{i}", "x", [tiny_spec()], DIGITS, long, client=here) for i in (1, 2)
    ]
    try:
        assert [j.error for j in jobs] == [None, None]
        third = services.submit("tab-3", "x", [tiny_spec()], DIGITS, long, client=here)
        assert third == services.Started(
            error="2 runs from this computer are waiting or running already, in all its "
            "browser tabs (the limit is 2); stop one or wait for it to finish"
        )
        other = services.submit("tab-4", "x", [tiny_spec()], DIGITS, long, client=there)
        assert other.error is None
        jobs.append(other)
        assert services.client_address() is None  # outside a page: not counted
    finally:
        for i, started in zip((1, 2, 4), jobs, strict=True):
            mgr.cancel(started.job, f"tab-{i}")
            mgr.wait(started.job, timeout=60)


def test_lesson_8_switches_the_skips_at_its_step_with_one_command(monkeypatch):
    """The lesson sends `skip on` with `at_step` (no watcher thread): in the worker
    process the switch lands exactly at the planned step, and the lesson's claims hold."""
    from app import lesson_jobs
    from core.lesson_runs import plan_lesson
    from core.lessons import load_lessons

    monkeypatch.setenv(lesson_jobs.SIZE_ENV, "tiny")
    lesson = next(x for x in load_lessons() if x.key == "08-switch")
    at = next(a for a in plan_lesson(lesson, tiny=True) if a.label == "switched").skips_on_at
    started = lesson_jobs.start(lesson, OWNER)
    assert started.error is None
    mgr = services.job_manager()
    assert [mgr.wait(job, timeout=300) for job in started.jobs] == ["finished"] * len(started.jobs)
    logs = {arm: log for job in started.jobs for arm, log in mgr.logs(job, OWNER).items()}
    events = [(e.step, e.detail) for e in logs["switched"].snapshot().events if e.kind == "skip"]
    assert events == [(at, "skip on: all blocks")]
    result = lesson_jobs.outcome(lesson, started.jobs, OWNER)
    assert not result.running and result.claims
    assert all(c.held for c in result.claims), [(c.text, c.numbers) for c in result.claims]
