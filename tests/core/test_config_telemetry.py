"""TrainConfig as data, and the RunLog's snapshots, downsampling and export."""

import csv
import io
import threading

import pytest

from core.config import ConfigError, TrainConfig
from core.errors import ExplainedError
from core.spec import SpecError
from core.telemetry import EvalRecord, Event, RunLog, StepRecord


def test_config_round_trips_through_json():
    cfg = TrainConfig(
        optimizer="adamw",
        lr=3e-4,
        schedule="step",
        milestones=(0.3, 0.9),
        steps=500,
        eval_every=50,
        channels_last=True,
        seed=9,
    )
    assert TrainConfig.from_json(cfg.to_json()) == cfg
    assert TrainConfig.from_json(TrainConfig().to_json()) == TrainConfig()


@pytest.mark.parametrize(
    ("config", "train_size", "message"),
    [
        (TrainConfig(lr=0), None, "learning rate must be a number from 1e-06 to 10, got 0;"),
        (TrainConfig(lr=1e9), None, "learning rate must be a number from 1e-06 to 10, got 1"),
        (
            TrainConfig(lr=float("nan")),
            None,
            "learning rate must be a number from 1e-06 to 10, got nan",
        ),
        (TrainConfig(batch_size=0), None, "batch size must be a whole number from 1"),
        (TrainConfig(batch_size=300), 200, "the batch size 300 is larger than the 200"),
        (TrainConfig(optimizer="lbfgs"), None, "optimizer 'lbfgs' is not available"),
        (TrainConfig(schedule="exp"), None, "schedule 'exp' is not available"),
        (TrainConfig(momentum=1.5), None, "momentum must be a number from 0 to 0.999, got 1.5"),
        (TrainConfig(nesterov=True, momentum=0), None, "Nesterov momentum needs a momentum"),
        (TrainConfig(milestones=(0.8, 0.2)), None, "milestones must be increasing shares"),
        (TrainConfig(epochs=0), None, "epochs must be a whole number from 1"),
        (TrainConfig(steps=10, warmup_steps=10), 1000, "the warm-up (10 steps) is as long"),
        (TrainConfig(label_smoothing=0.9), None, "label smoothing must be a number from 0 to 0.5"),
        (TrainConfig(device="tpu"), None, "device 'tpu' is not available; choose one of: auto"),
        (
            TrainConfig(epochs=1000, batch_size=1),
            60_000,
            "1,000 epochs of 60,000 batches are 60,000,000 steps, more than the 1,000,000 one "
            "run may take; use fewer epochs or a larger batch size",
        ),
        (TrainConfig(steps=2_000_000), None, "steps must be a whole number from 1 to 1,000,000"),
    ],
)
def test_config_validation_messages(config, train_size, message):
    with pytest.raises(ConfigError) as info:
        config.validate(train_size)
    assert message in str(info.value)
    assert str(info.value).startswith("training settings: ")
    assert isinstance(info.value, ExplainedError) and not isinstance(info.value, SpecError)


def test_config_parse_errors():
    with pytest.raises(ConfigError, match="not training settings of schema 1"):
        TrainConfig.from_json('{"lr": 0.1}')
    with pytest.raises(ConfigError, match=r"^training settings: unknown setting 'learning_rate'"):
        TrainConfig.from_json('{"schema": 1, "learning_rate": 0.1}')
    with pytest.raises(ConfigError, match="'milestones' must be a list of numbers"):
        TrainConfig.from_json('{"schema": 1, "milestones": "half"}')


def _record(step, loss=1.0, layers=3):
    return StepRecord(
        step=step,
        epoch=step / 10,
        loss=loss,
        accuracy=0.5,
        lr=0.1,
        grad_norms=(float(step),) * layers,
        weight_norms=(1.0,) * layers,
        update_ratios=(0.01,) * layers,
    )


def test_snapshots_are_immutable_and_do_not_see_later_appends():
    log = RunLog(("stem", "blocks.0", "head"))
    log.append_step(_record(1))
    snap = log.snapshot()
    log.append_step(_record(2))
    log.append_event(Event(step=2, kind="skip", detail="skip off: all blocks"))
    assert [r.step for r in snap.steps] == [1] and snap.events == ()
    assert [r.step for r in log.snapshot().steps] == [1, 2]
    assert log.version == 3 and snap.version == 1
    with pytest.raises(ValueError, match="expected 3 layer norms, got 2"):
        log.append_step(_record(3, layers=2))


def test_downsampling_buckets_by_mean_and_keeps_the_last_step():
    log = RunLog(("a", "b", "c"))
    for s in range(1, 1001):
        log.append_step(_record(s, loss=float(s)))
    small = log.snapshot().downsample(100)
    assert len(small.steps) == 63  # buckets of 16 steps, the last one of 8
    assert small.steps[-1].step == 1000 and small.last.step == 1000
    assert small.steps[0].loss == pytest.approx(8.5)  # mean of steps 1..16
    assert small.steps[0].grad_norms == pytest.approx((8.5,) * 3)
    assert small.steps[-1].loss == pytest.approx(996.5)  # mean of steps 993..1000
    assert log.snapshot().downsample(5000).steps == log.snapshot().steps


def test_csv_export_has_every_step_evals_and_events():
    log = RunLog(("stem", "head"))
    for s in range(1, 6):
        log.append_step(_record(s, layers=2))
    log.append_eval(EvalRecord(step=5, epoch=0.5, loss=0.7, accuracy=0.8))
    log.append_event(Event(step=3, kind="lr", detail="lr = 0.01"))
    rows = list(csv.reader(io.StringIO(log.snapshot().to_csv())))
    assert rows[0][:3] == ["step", "epoch", "loss"] and "grad_norm:stem" in rows[0]
    assert [r[0] for r in rows[1:6]] == ["1", "2", "3", "4", "5"]
    assert ["5", "0.5", "0.7", "0.8"] in rows
    assert ["3", "lr", "lr = 0.01"] in rows


def test_concurrent_appends_and_snapshots_lose_nothing():
    log = RunLog(("a",))
    seen = []

    def writer(offset):
        for s in range(500):
            log.append_step(_record(offset + s, layers=1))

    def reader():
        for _ in range(200):
            snap = log.snapshot()
            seen.append(len(snap.steps))

    threads = [threading.Thread(target=writer, args=(k * 1000,)) for k in range(3)]
    threads.append(threading.Thread(target=reader))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(log.snapshot().steps) == 1500
    assert seen == sorted(seen)  # a reader never sees the log shrink
