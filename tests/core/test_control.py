"""Control that holds, with real threads: a stop lands within about a second even inside a
long step or a long validation, a paused run gives its place to a waiting run, an ended
run lets go of its model, optimizer and data, and the ETA counts each round once.

The times asserted here are control guarantees with wide margins, not speed benchmarks."""

import dataclasses
import gc
import time
import weakref

import pytest
import torch

from core.config import TrainConfig
from core.data import TensorData
from core.jobs import Arm, Command, LocalJobManager
from core.presets import cifar_resnet
from core.run import Run
from tests.core.helpers import separable_data, tiny_spec
from tests.waiting import wait_for

CPU = {"device": "cpu", "precision": "fp32"}
STOP_WITHIN_S = 3.0  # "about a second", with room for a loaded 2-core machine


@pytest.fixture
def manager():
    m = LocalJobManager(max_running=1, threads_per_job=1, pause_release_s=0.3)
    yield m
    for info in m.list("alice"):
        if info.active:
            m.cancel(info.id, "alice")
    for info in m.list("alice"):
        m.wait(info.id, timeout=30)


def _images(n_train: int, n_val: int, size: int) -> TensorData:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n_train + n_val) % 2
    x = torch.rand(n_train + n_val, 3, size, size, generator=g)
    return TensorData(
        name="noise",
        classes=("a", "b"),
        x_train=x[:n_train],
        y_train=y[:n_train],
        x_val=x[n_train:],
        y_val=y[n_train:],
        mean=(0.5,) * 3,
        std=(0.3,) * 3,
    )


def _stop_and_time(manager, job) -> float:
    start = time.monotonic()
    manager.cancel(job, "alice")
    assert manager.wait(job, timeout=60) == "stopped"
    return time.monotonic() - start


def test_stop_lands_inside_a_step_longer_than_a_second(manager):
    # ResNet-20 at 32x32, batch 256, one thread: a step takes 2-3 s on a 2-core CPU.
    spec = cifar_resnet(3, input_shape=(3, 32, 32), num_classes=2)
    data = _images(512, 16, 32)
    cfg = TrainConfig(steps=10, batch_size=256, **CPU)
    job = manager.submit("alice", "slow", [Arm("net", spec)], data, cfg)
    wait_for(lambda: manager.info(job, "alice").device, what="the run to start its first step")
    assert _stop_and_time(manager, job) < STOP_WITHIN_S
    info = manager.info(job, "alice")
    assert info.step == 0  # the stop landed inside the first step, not after it
    assert [e.kind for e in manager.logs(job, "alice")["net"].snapshot().events] == ["stop"]


def test_stop_lands_inside_a_long_validation(manager):
    spec = cifar_resnet(3, input_shape=(3, 32, 32), num_classes=2)
    data = _images(64, 4096, 32)  # validating 4,096 images of 32x32 takes seconds
    cfg = TrainConfig(steps=1, batch_size=16, **CPU)
    job = manager.submit("alice", "val", [Arm("net", spec)], data, cfg)
    log = wait_for(lambda: manager.logs(job, "alice").get("net"), what="the run to start")
    wait_for(lambda: log.snapshot().steps, what="the step before the validation")
    assert _stop_and_time(manager, job) < STOP_WITHIN_S
    snap = log.snapshot()
    assert snap.evals == ()  # cut short, not recorded half-done
    assert [e.kind for e in snap.events] == ["stop"]


def test_a_paused_run_gives_its_place_to_a_waiting_run_and_resumes_later(manager):
    long = TrainConfig(steps=100_000, batch_size=16, **CPU)
    short = TrainConfig(steps=5, batch_size=16, **CPU)
    a = manager.submit("alice", "a", [Arm("net", tiny_spec())], separable_data(), long)
    wait_for(lambda: manager.info(a, "alice").step >= 1, what="a first step")
    manager.send(a, "alice", Command("pause"))
    wait_for(lambda: manager.info(a, "alice").status == "paused", what="pause")
    paused = manager.info(a, "alice")
    assert (paused.eta_seconds, paused.images_per_s) == (None, 0.0)
    b = manager.submit("alice", "b", [Arm("net", tiny_spec())], separable_data(), short)
    assert manager.wait(b) == "finished"  # a gave its place after 0.3 s
    info = manager.info(a, "alice")
    assert info.status == "paused" and manager.running_threads() == 0
    assert info.message == (
        "paused for more than 0.3 seconds, so it gave its training place to a run that "
        "was waiting; after Resume it continues as soon as a place is free"
    )
    manager.send(a, "alice", Command("skip", block=1, on=False))  # applied at once
    assert manager.info(a, "alice").skips["net"][1] is False

    c = manager.submit("alice", "c", [Arm("net", tiny_spec())], separable_data(), long)
    wait_for(lambda: manager.info(c, "alice").status == "running", what="c to start")
    manager.send(a, "alice", Command("resume"))
    info = manager.info(a, "alice")
    assert (info.status, info.queue_position) == ("queued", 1)
    assert info.message == "resumed: it continues as soon as a training place is free"
    manager.cancel(c, "alice")
    wait_for(lambda: manager.info(a, "alice").step > paused.step, what="a to go on")
    events = manager.logs(a, "alice")["net"].snapshot().events
    assert [(e.kind, e.step) for e in events] == [
        ("pause", paused.step),
        ("skip", paused.step),
        ("resume", paused.step),
    ]


def test_an_ended_run_lets_go_of_its_model_optimizer_and_data(manager):
    cfg = TrainConfig(steps=100_000, batch_size=16, **CPU)
    job = manager.submit("alice", "x", [Arm("net", tiny_spec())], separable_data, cfg)
    wait_for(lambda: manager.info(job, "alice").step >= 2, what="two steps")
    manager.send(job, "alice", Command("pause"))
    wait_for(lambda: manager.info(job, "alice").status == "paused", what="pause")
    trainer = manager._jobs[job].run.trainers["net"]
    refs = {
        name: weakref.ref(obj)
        for name, obj in [
            ("run", manager._jobs[job].run),
            ("net", trainer.net),
            ("optimizer", trainer.optimizer),
            ("data", trainer.data),
        ]
    }
    final = {k: v.clone() for k, v in trainer.net.state_dict().items()}
    del trainer
    manager.cancel(job, "alice")
    assert manager.wait(job) == "stopped"
    gc.collect()
    assert {name: ref() is None for name, ref in refs.items()} == dict.fromkeys(refs, True)
    net, data = manager.copy_model(job, "alice", "net")  # rebuilt from the kept weights
    assert all(torch.equal(v, final[k]) for k, v in net.state_dict().items())
    assert len(data.y_train) == len(separable_data().y_train)
    assert len(manager.logs(job, "alice")["net"].snapshot().steps) >= 2


def _eta_and_time_taken(manager, n_arms: int) -> tuple[float, float]:
    """The ETA shown at a fifth of a run, and the time the rest of it then took."""
    arms = [Arm(f"net{i}", tiny_spec()) for i in range(n_arms)]
    steps = 200 // n_arms  # about as long either way
    cfg = TrainConfig(steps=steps, batch_size=16, eval_every=10**6, **CPU)
    job = manager.submit("alice", "eta", arms, separable_data(), cfg)
    info = wait_for(
        lambda: (i := manager.info(job, "alice")).progress >= 0.2 and i.eta_seconds and i,
        what="a fifth of the run",
    )
    start = time.monotonic()
    assert manager.wait(job) == "finished"
    return info.eta_seconds, time.monotonic() - start


@pytest.mark.parametrize("n_arms", [1, 4])
def test_the_eta_at_a_fifth_of_the_run_is_within_a_quarter_of_the_time_taken(manager, n_arms):
    # Wall clock against wall clock: other work that starts or stops on the machine in
    # mid-run changes the pace the ETA was computed from. Up to three runs; one must hold
    # (before the fix every run was about n_arms times too high, see test_run's exact one).
    tries = []
    for _ in range(3):
        eta, taken = _eta_and_time_taken(manager, n_arms)
        tries.append((round(eta, 2), round(taken, 2)))
        if eta == pytest.approx(taken, rel=0.25):
            return
    pytest.fail(f"the ETA at 20% against the time the rest took, three runs: {tries}")


# -- commands at a step ------------------------------------------------------------------

PLAIN = dataclasses.replace(tiny_spec(), name="plain")  # resnet8: three residual blocks
SKIP_AT = 4


def _plain_run(steps: int = 8) -> Run:
    """A Run of the tiny ResNet-8 with every skip off: a plain net."""
    run = Run([Arm("net", PLAIN)], separable_data(), TrainConfig(steps=steps, batch_size=16, **CPU))
    run.apply(Command("skip", on=False))
    return run


def _grads(run: Run) -> list[tuple[float, ...]]:
    return [r.grad_norms for r in run.logs["net"].snapshot().steps]


def test_a_command_at_a_step_lands_before_that_step_runs_exactly():
    scheduled, by_hand = _plain_run(), _plain_run()
    scheduled.apply(Command("skip", on=True, at_step=SKIP_AT))
    assert scheduled.scheduled == (Command("skip", on=True, at_step=SKIP_AT),)
    while not scheduled.ended:
        scheduled.step()
        assert all(scheduled.skips()["net"].values()) is (scheduled.step_count >= SKIP_AT)
    for _ in range(SKIP_AT):  # the oracle: the same command sent by hand after 4 steps
        by_hand.step()
    by_hand.apply(Command("skip", on=True))
    while not by_hand.ended:
        by_hand.step()
    events = [(e.kind, e.step, e.detail) for e in scheduled.logs["net"].snapshot().events]
    assert events[:2] == [("skip", 0, "skip off: all blocks"), ("skip", 4, "skip on: all blocks")]
    assert _grads(scheduled) == _grads(by_hand)  # the same numbers, step for step
    # ...and the gradient flow changes from step 5 on, against a run left plain
    plain = _plain_run()
    while not plain.ended:
        plain.step()
    same = [a == b for a, b in zip(_grads(scheduled), _grads(plain), strict=True)]
    assert same == [True] * SKIP_AT + [False] * (8 - SKIP_AT)


def test_a_command_for_a_step_already_passed_applies_at_once_and_a_pause_waits_its_step():
    run = _plain_run(steps=10)
    for _ in range(3):
        run.step()
    run.apply(Command("lr", value=0.02, at_step=1))  # late: now, at step 3
    run.apply(Command("pause", at_step=5))
    run.apply(Command("lr", value=0.03, at_step=5))  # same step: in the order sent
    while run.status == "running":
        run.step()
    assert (run.status, run.step_count) == ("paused", 5)
    events = [(e.kind, e.step) for e in run.logs["net"].snapshot().events]
    assert events[1:] == [("lr", 3), ("pause", 5), ("lr", 5)]
    assert run.scheduled == ()


def test_a_skip_at_a_step_lands_exactly_through_the_thread_manager(manager):
    cfg = TrainConfig(steps=30, batch_size=16, **CPU)
    job = manager.submit("alice", "switch", [Arm("net", PLAIN)], separable_data(), cfg)
    manager.send(job, "alice", Command("skip", on=False))
    manager.send(job, "alice", Command("skip", on=True, at_step=12))
    assert manager.wait(job) == "finished"
    events = manager.logs(job, "alice")["net"].snapshot().events
    skips = [(e.step, e.detail) for e in events if e.kind == "skip"]
    assert skips[-1] == (12, "skip on: all blocks")
    assert all(manager.info(job, "alice").skips["net"].values())
