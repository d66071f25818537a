"""The overfitting experiment's plan and the gap it reads from a run's log."""

import pytest

from core.config import TrainConfig
from core.datasets import DataRequest
from core.overfitting import (
    DROPOUT,
    OverfittingError,
    gap,
    is_overfitting,
    plan,
    run_name,
)
from core.telemetry import EvalRecord, RunLog, StepRecord
from tests.core.helpers import tiny_spec


def test_plan_one_run_per_size_same_net_and_settings_with_and_without_dropout():
    runs = plan(tiny_spec(), DataRequest(name="digits"), steps=100, weight_decay=5e-4)
    assert [r.data.subset for r in runs] == [100, 1000, None]
    assert [r.name for r in runs] == [
        "Overfitting: 100 images, weight decay 0.0005",
        "Overfitting: 1,000 images, weight decay 0.0005",
        "Overfitting: all images, weight decay 0.0005",
    ]
    assert all(is_overfitting(r.name) for r in runs)
    for r in runs:
        bare, dropped = r.specs
        assert bare.head.dropout == 0.0 and dropped.head.dropout == DROPOUT
        assert bare.blocks == dropped.blocks and bare.name != dropped.name
        assert r.config.steps == 100 and r.config.weight_decay == 5e-4
        assert r.config.eval_every == 10
        assert r.data.name == "digits"
    assert len({r.config for r in runs}) == 1
    assert run_name(None, 0.0) == "Overfitting: all images, no weight decay"


def test_plan_keeps_other_settings_and_refuses_what_cannot_work():
    base = TrainConfig(lr=0.01, batch_size=32, seed=4, device="cpu")
    (run,) = plan(tiny_spec(), DataRequest(name="digits"), steps=50, config=base, sizes=(100,))
    assert (run.config.lr, run.config.batch_size, run.config.seed) == (0.01, 32, 4)
    assert run.config.weight_decay == 0.0
    with pytest.raises(OverfittingError) as e:
        plan(tiny_spec(), DataRequest(name="digits"), steps=5)
    assert "the number of steps" in str(e.value) and str(e.value).startswith("overfitting: ")


def _log(steps, accs, evals):
    log = RunLog(("a",))
    for s, a in zip(steps, accs, strict=True):
        log.append_step(StepRecord(s, 0.0, 1.0, a, 0.1, (1.0,), (1.0,), (0.0,)))
    for s, a in evals:
        log.append_eval(EvalRecord(s, 0.0, 1.0, a))
    return log.snapshot()


def test_gap_is_the_mean_batch_accuracy_since_the_previous_validation_minus_validation():
    accs = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    snap = _log(range(1, 11), accs, [(5, 0.3), (10, 0.55)])
    g = gap(snap)
    expected_train = sum(accs[5:10]) / 5  # steps 6..10, computed by hand: 0.8
    assert g.step == 10
    assert g.train == pytest.approx(expected_train)
    assert g.val == 0.55
    assert g.gap == pytest.approx(expected_train - 0.55)


def test_gap_needs_a_validation_and_uses_the_first_window_from_step_one():
    assert gap(_log([1, 2], [0.5, 0.5], [])) is None
    g = gap(_log([1, 2, 3, 4], [0.0, 1.0, 1.0, 0.0], [(3, 0.25)]))
    assert (g.step, g.train, g.val) == (3, pytest.approx(2 / 3), 0.25)
