"""The process backend with real worker processes, a real store and `kill -9`: runs train
apart from this process, commands land, a killed worker's run is marked with the reason
while the others go on, and an interrupted run resumes to the very weights an
uninterrupted one reaches, with every step stored once."""

import os
import signal

import pytest
import torch

from core.checkpoint import read_checkpoint
from core.config import TrainConfig
from core.data import DataRequest, load
from core.jobs_api import JobError
from core.run import Arm, Command, Run
from core.workers import ProcessJobManager
from tests.core.helpers import separable_data, tiny_spec, with_dropout
from tests.waiting import wait_for

OWNER = "ann"
TIMEOUT = 180  # a spawned worker imports torch: seconds on a busy 2-core machine
STEPS = 150  # long enough to be killed part-way (at step ~25) on a fast machine
TWIN = [Arm("Plain 8", tiny_spec("plain8_narrow")), Arm("ResNet-8", tiny_spec())]


def config(steps: int, **kw) -> TrainConfig:
    base = dict(steps=steps, batch_size=16, eval_every=10, device="cpu", precision="fp32")
    return TrainConfig(**(base | kw))


@pytest.fixture
def manager(tmp_path):
    mgr = ProcessJobManager(
        tmp_path, max_running=2, threads_per_job=1, checkpoint_every=5, flush_s=0.05
    )
    yield mgr
    mgr.shutdown()


def stored_steps(mgr, job, arm):
    return [r.step for r in mgr.logs(job, OWNER)[arm].snapshot().steps]


def lr_steps(mgr, job):
    return [e.step for e in mgr.logs(job, OWNER)["Plain 8"].snapshot().events if e.kind == "lr"]


def events_of(mgr, job, arm):
    return mgr.logs(job, OWNER)[arm].snapshot().events


def test_a_run_trains_in_a_worker_and_everything_reaches_the_store(manager):
    job = manager.submit(OWNER, "twin", TWIN, separable_data(), config(20))
    assert manager.wait(job, TIMEOUT) == "finished"
    assert manager.worker_pid(job) is None  # the worker is gone
    info = manager.info(job, OWNER)
    assert (info.arms, info.step, info.total_steps) == (("Plain 8", "ResNet-8"), 20, 20)
    assert info.classes == ("dim", "bright")
    assert info.skips == {
        "Plain 8": {0: False, 1: False, 2: False},
        "ResNet-8": {0: True, 1: True, 2: True},
    }
    for arm in info.arms:
        snap = manager.logs(job, OWNER)[arm].snapshot()
        assert [r.step for r in snap.steps] == list(range(1, 21))
        assert [e.step for e in snap.evals] == [10, 20]
        assert snap.events[-1].kind == "finished"
    assert [i.id for i in manager.list(OWNER)] == [job]
    assert manager.list("bob") == []
    with pytest.raises(JobError, match="there is no run"):
        manager.info(job, "bob")
    net, data = manager.copy_model(job, OWNER, "ResNet-8")
    tensors, _ = read_checkpoint(manager.store.checkpoint_path(job, "ResNet-8"))
    assert torch.equal(net.state_dict()["head.fc.weight"], tensors["model.head.fc.weight"])
    assert data.name == "separable"
    manager.delete(job, OWNER)
    assert manager.list(OWNER) == []
    assert not manager.store.run_dir(job).exists()


def test_commands_reach_the_worker_at_a_step(manager):
    job = manager.submit(OWNER, "long", TWIN, separable_data(), config(100_000))
    wait_for(lambda: manager.info(job, OWNER).step >= 3, TIMEOUT, "training")
    ours = os.getpriority(os.PRIO_PROCESS, 0)  # the worker yields the CPU to the server
    assert os.getpriority(os.PRIO_PROCESS, manager.worker_pid(job)) == min(ours + 10, 19)
    manager.send(job, OWNER, Command("skip", block=1, on=False, arm="ResNet-8"))
    events = wait_for(
        lambda: [
            e for e in manager.logs(job, OWNER)["ResNet-8"].snapshot().events if e.kind == "skip"
        ],
        TIMEOUT,
        "the skip event",
    )
    assert events[0].detail == "skip off: block 1" and events[0].step >= 3
    wait_for(lambda: manager.info(job, OWNER).skips["ResNet-8"][1] is False, 30, "spec_now")
    manager.send(job, OWNER, Command("pause"))
    wait_for(lambda: manager.info(job, OWNER).status == "paused", 30, "paused")
    net, _ = manager.copy_model(job, OWNER, "ResNet-8")
    assert net.skips() == {0: True, 1: False, 2: True}  # the spec as it is now
    with pytest.raises(JobError, match="no network named"):
        manager.send(job, OWNER, Command("lr", value=0.01, arm="VGG"))
    manager.cancel(job, OWNER)
    assert manager.wait(job, 60) == "stopped"
    assert manager.info(job, OWNER).message.startswith("stopped at step ")


def test_a_killed_worker_is_marked_and_the_other_run_finishes(manager):
    victim = manager.submit(OWNER, "victim", TWIN[:1], separable_data(), config(100_000))
    other = manager.submit(OWNER, "other", TWIN[1:], separable_data(), config(200))
    wait_for(lambda: manager.info(victim, OWNER).step >= 6, TIMEOUT, "the victim training")
    os.kill(manager.worker_pid(victim), signal.SIGKILL)
    assert manager.wait(victim, 60) == "interrupted"  # it had checkpoints: resumable
    message = manager.info(victim, OWNER).message
    assert message.startswith("interrupted at step ")
    assert "its training process was killed" in message and "Resume" in message
    assert manager.wait(other, TIMEOUT) == "finished"
    assert stored_steps(manager, other, "ResNet-8") == list(range(1, 201))


def test_a_worker_over_its_memory_cap_fails_with_a_readable_message(manager, monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_WORKER_MEMORY_MB", "1")  # below what torch maps
    data = separable_data(n=512, size=32)
    job = manager.submit(OWNER, "too big", TWIN[1:], data, config(5, batch_size=256))
    assert manager.wait(job, TIMEOUT) == "failed"
    message = manager.info(job, OWNER).message
    assert message.startswith("the run ran out of memory ")
    assert message.endswith("use a smaller batch size or a smaller network")


@pytest.mark.parametrize(
    "pause_first",
    [False, True],
    ids=["while training", "while paused"],
)
def test_kill_restart_and_resume_give_the_uninterrupted_weights(tmp_path, pause_first):
    request = DataRequest(name="shapes", size=8, n=240)
    arms = [
        Arm("Plain 8", tiny_spec("plain8_narrow", classes=6)),
        Arm("ResNet-8", with_dropout(tiny_spec(classes=6))),
    ]
    cfg = config(STEPS, augment=True, lr=0.05)
    kw = dict(max_running=1, threads_per_job=1, checkpoint_every=7, flush_s=0.05)
    first = ProcessJobManager(tmp_path, **kw)
    job = first.submit(OWNER, "resumed", arms, request, cfg)
    wait_for(lambda: first.info(job, OWNER).step >= 12, TIMEOUT, "training")
    first.send(job, OWNER, Command("lr", value=0.03))
    lr_step = wait_for(lambda: lr_steps(first, job), 30, "the lr event")[0]
    # a checkpoint after the change (every 7 steps): the resumed run must keep the new rate
    wait_for(lambda: first.info(job, OWNER).step >= lr_step + 8, 30, "a checkpoint")
    if pause_first:
        first.send(job, OWNER, Command("pause"))
        wait_for(lambda: first.info(job, OWNER).status == "paused", 30, "paused")
    os.kill(first.worker_pid(job), signal.SIGKILL)
    wait_for(lambda: first.worker_pid(job) is None, 30, "the worker's end")
    first.shutdown()

    second = ProcessJobManager(tmp_path, **kw)  # a restarted server on the same store
    info = second.info(job, OWNER)
    assert info.status == "interrupted" and info.message.startswith("interrupted at step ")
    second.resume(job, OWNER)
    assert second.wait(job, TIMEOUT) == "finished"
    with pytest.raises(JobError, match="cannot be resumed"):
        second.resume(job, OWNER)

    assert lr_steps(second, job) == [lr_step]
    expected = oracle_with_lr(arms, request, cfg, lr_step)
    for arm in ("Plain 8", "ResNet-8"):
        assert stored_steps(second, job, arm) == list(range(1, STEPS + 1))
        safe = arm.replace(" ", "_")
        tensors, header = read_checkpoint(second.store.checkpoint_path(job, safe))
        assert header["step"] == STEPS
        for name, want in expected[arm].items():
            torch.testing.assert_close(tensors[f"model.{name}"], want, rtol=1e-5, atol=1e-6)
    second.shutdown()


def oracle_with_lr(arms, request, cfg, lr_step: int):
    """The uninterrupted run, its learning rate changed at the same step."""
    run = Run(arms, load(request), cfg)
    while not run.ended:
        if run.step_count == lr_step:
            run.apply(Command("lr", value=0.03))
            lr_step = -1
        run.step()
    return {name: t.net.state_dict() for name, t in run.trainers.items()}


def test_a_paused_run_gives_its_place_away_and_continues_after_resume(tmp_path):
    mgr = ProcessJobManager(
        tmp_path, threads_per_job=1, checkpoint_every=5, flush_s=0.05, pause_release_s=0.2
    )
    paused = mgr.submit(OWNER, "paused", TWIN[:1], separable_data(), config(100_000))
    wait_for(lambda: mgr.info(paused, OWNER).step >= 3, TIMEOUT, "training")
    mgr.send(paused, OWNER, Command("pause"))
    wait_for(lambda: mgr.info(paused, OWNER).status == "paused", 30, "paused")
    waiting = mgr.submit(OWNER, "waiting", TWIN[1:], separable_data(), config(20))
    assert mgr.wait(waiting, TIMEOUT) == "finished"  # it had the only place
    info = mgr.info(paused, OWNER)
    assert info.status == "paused" and "gave its training place" in info.message
    mgr.send(paused, OWNER, Command("resume"))
    wait_for(lambda: mgr.info(paused, OWNER).step > info.step + 3, TIMEOUT, "training again")
    mgr.cancel(paused, OWNER)
    assert mgr.wait(paused, 60) == "stopped"
    steps = stored_steps(mgr, paused, "Plain 8")
    assert steps == list(range(1, len(steps) + 1))  # no gap, no step twice
    mgr.shutdown()
