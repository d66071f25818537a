"""The synchronous Run: commands land at the step they were applied, arms interleave, an
interrupted step or validation is taken again as if nothing had happened, and the ended
run's weights rebuild the net. No threads: every test drives the run by hand."""

import pytest
import torch

from core.config import TrainConfig
from core.errors import ExplainedError
from core.run import FINISHED, PAUSED, RUNNING, STOPPED, Arm, Command, Run, failure_message
from core.spec import NetSpec
from tests.core.helpers import separable_data, tiny_spec, with_dropout

DATA = separable_data()
CPU = {"device": "cpu", "precision": "fp32"}


def cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"steps": 12, "batch_size": 16, **CPU, **kw})


def test_pause_skip_lr_resume_land_at_the_paused_step():
    run = Run([Arm("net", tiny_spec())], DATA, cfg(steps=10))
    for _ in range(3):
        run.step()
    run.apply(Command("pause"))
    run.step()  # paused: no step is taken
    assert (run.status, run.step_count, run.eta_seconds, run.rate) == (PAUSED, 3, None, 0.0)
    run.apply(Command("skip", block=1, on=False))
    run.apply(Command("lr", value=0.02))
    run.apply(Command("resume"))
    run.step()
    snap = run.logs["net"].snapshot()
    assert [(e.kind, e.step) for e in snap.events] == [
        ("pause", 3),
        ("skip", 3),
        ("lr", 3),
        ("resume", 3),
    ]
    assert snap.steps[-1].step == 4 and snap.steps[-1].lr == pytest.approx(0.02)
    assert run.skips() == {"net": {0: True, 1: False, 2: True}}
    # the log keeps the spec it started from and the spec as it is now
    start, now = (NetSpec.from_json(snap.meta[k]) for k in ("spec_start", "spec"))
    assert start == tiny_spec() and now == run.specs()["net"] and now != start
    assert now.blocks[1].skip is False


def test_arms_start_with_equal_weights_and_take_their_steps_in_turn():
    run = Run(
        [Arm("plain", tiny_spec("plain8_narrow")), Arm("res", tiny_spec("resnet8_narrow"))],
        DATA,
        cfg(),
    )
    plain, res = (run.trainers[k].net.state_dict() for k in ("plain", "res"))
    assert plain.keys() == res.keys()
    assert all(torch.equal(plain[k], res[k]) for k in plain)  # one seed: same start
    for n in range(1, 4):
        run.step()
        assert [t.step_count for t in run.trainers.values()] == [n, n]
    assert run.trainers["plain"].log.snapshot().steps[0].loss != (
        run.trainers["res"].log.snapshot().steps[0].loss
    )  # same weights, different function


def _firing_at(*polls: int):
    """An interrupt that fires at the given polls (counting from 1), and never again."""
    count = iter(range(1, 10**9))
    return lambda: next(count) in polls


def test_an_interrupted_step_is_taken_again_on_the_same_batch_and_dropout():
    spec = with_dropout(tiny_spec())
    arms = [Arm("a", spec), Arm("b", spec)]
    calm = Run(arms, DATA, cfg(eval_every=4))
    while not calm.ended:
        calm.step()
    choppy = Run(
        arms, DATA, cfg(eval_every=4), interrupt=_firing_at(3, 9, 20, 26, 47, 60, 95, 140, 160)
    )
    calls = 0
    while not choppy.ended:
        choppy.step()
        calls += 1
    assert calls > calm.total_steps  # some rounds were cut short
    for arm in ("a", "b"):
        ref, got = (r.logs[arm].snapshot() for r in (calm, choppy))
        assert [s.loss for s in got.steps] == [s.loss for s in ref.steps]
        assert [e.step for e in got.evals] == [e.step for e in ref.evals] == [4, 8, 12]
    for arm in ("a", "b"):  # BatchNorm's averages too: a redone step counts once
        ref, got = (r.trainers[arm].net.state_dict() for r in (calm, choppy))
        assert ref.keys() == got.keys() and any("running_mean" in k for k in ref)
        for k, v in ref.items():
            assert torch.equal(v, got[k]), k


def test_an_interrupted_validation_is_redone_in_full_before_the_next_step():
    run = Run([Arm("net", tiny_spec())], DATA, cfg(steps=2, eval_every=1))
    stop = {"now": False}
    run.trainers["net"].interrupt = lambda: stop["now"]
    trainer = run.trainers["net"]
    real = trainer.evaluate

    def evaluate_then_interrupt():
        stop["now"] = True  # the interrupt comes during the first validation
        try:
            return real()
        finally:
            stop["now"] = False

    trainer.evaluate = evaluate_then_interrupt
    run.step()
    assert trainer.step_count == 1 and trainer.eval_due and run.logs["net"].snapshot().evals == ()
    trainer.evaluate = real
    run.step()
    run.step()
    assert run.status == FINISHED
    assert [e.step for e in run.logs["net"].snapshot().evals] == [1, 2]


def test_stop_ends_the_run_at_its_step_and_later_commands_change_nothing():
    run = Run([Arm("net", tiny_spec())], DATA, cfg())
    run.step()
    run.step()
    run.apply(Command("stop"))
    assert (run.status, run.message, run.ended) == (STOPPED, "stopped at step 2", True)
    run.step()
    run.apply(Command("resume"))
    assert run.step_count == 2 and run.status == STOPPED
    assert [(e.kind, e.step) for e in run.logs["net"].snapshot().events] == [("stop", 2)]


def test_a_refused_command_is_logged_and_the_run_goes_on():
    run = Run([Arm("net", tiny_spec())], DATA, cfg(steps=3))
    run.apply(Command("skip", block=99, on=False))
    while not run.ended:
        run.step()
    events = run.logs["net"].snapshot().events
    assert [e.kind for e in events] == ["rejected", "finished"]
    assert "block 99: has no skip connection" in events[0].detail
    assert run.status == FINISHED


def test_weights_rebuild_the_net_with_its_skips_as_they_are():
    run = Run([Arm("net", tiny_spec())], DATA, cfg(steps=3))
    run.step()
    run.apply(Command("skip", block=0, on=False))
    run.step()
    weights = run.weights("net")
    live = run.trainers["net"].net.eval()
    copy = weights.build()
    assert copy.skips() == live.skips() == {0: False, 1: True, 2: True}
    x = DATA.x_val[:8]
    prepared = run.trainers["net"].prepare(x)
    assert torch.equal(copy(prepared), live(prepared))
    assert all(t.device.type == "cpu" for t in weights.state.values())


def test_eta_counts_each_round_once():
    run = Run([Arm(k, tiny_spec()) for k in "abcd"], DATA, cfg(steps=8))
    run.step()
    first = run.seconds  # the first round pays for warm-up: left out of the pace
    run.step()
    run.step()
    assert run.status == RUNNING
    assert run.eta_seconds == pytest.approx(5 * (run.seconds - first) / 2)  # not 4 x that
    assert run.rate > 0


def test_failure_messages_are_written_for_the_user():
    oom = torch.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.15 GiB total capacity)"
    )
    assert failure_message(oom, 7) == (
        "the run ran out of memory at step 7; use a smaller batch size or a smaller network"
    )
    cpu = RuntimeError(
        "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate "
        "memory: you tried to allocate 1099511627776 bytes."
    )
    assert failure_message(cpu, 3).startswith("the run ran out of memory at step 3;")
    assert failure_message(KeyError("/srv/app/core/x.py"), None) == (
        "the run failed before its first step because of an error in the server; the "
        "details are in the server log"
    )
    explained = ExplainedError("the file is gone", where="the dataset", fix="upload it again")
    assert failure_message(explained, 2) == "the dataset: the file is gone; upload it again"
