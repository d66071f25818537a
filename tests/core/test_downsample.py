"""Downsampling kept as steps arrive equals downsampling from scratch, on both backends'
logs, and a stored log's chart refresh reads only the rows stored since the last one."""

import json

import numpy as np
import pytest

from core.config import TrainConfig
from core.downsample import Buckets, bucket_records, bucket_width
from core.presets import PRESETS
from core.store import RunStore
from core.store_view import StoredLog
from core.store_writer import RunWriter
from core.telemetry import EvalRecord, Event, RunLog, StepRecord

LAYERS = ("stem", "blocks.0", "head")


def _records(n: int, seed: int = 0, start: int = 1) -> list[StepRecord]:
    rng = np.random.default_rng(seed)
    return [
        StepRecord(
            step=s,
            epoch=s / 7,
            loss=float(rng.exponential()),
            accuracy=float(rng.random()),
            lr=0.1 / s,
            grad_norms=tuple(rng.lognormal(size=3).tolist()),
            weight_norms=tuple(rng.random(3).tolist()),
            update_ratios=tuple(rng.random(3).tolist()),
            images_per_s=float(s),
            seconds=s * 0.5,
        )
        for s in range(start, start + n)
    ]


def _oracle(records, max_points):
    """Plain Python: buckets of the smallest power of two, each the mean of its steps."""
    width = 1
    while len(records) > width * max_points:
        width *= 2
    out = []
    for a in range(0, len(records), width):
        part = records[a : a + width]
        out.append(
            (
                part[-1].step,
                part[-1].seconds,
                sum(r.loss for r in part) / len(part),
                [sum(r.grad_norms[i] for r in part) / len(part) for i in range(3)],
                [sum(r.update_ratios[i] for r in part) / len(part) for i in range(3)],
            )
        )
    return out


def _same(got, want):
    assert [(r.step, r.seconds) for r in got] == [(w[0], w[1]) for w in want]
    np.testing.assert_allclose([r.loss for r in got], [w[2] for w in want], rtol=1e-12)
    np.testing.assert_allclose([r.grad_norms for r in got], [w[3] for w in want], rtol=1e-12)
    np.testing.assert_allclose([r.update_ratios for r in got], [w[4] for w in want], rtol=1e-12)


def test_bucket_width_is_the_smallest_power_of_two_that_fits():
    assert [bucket_width(n, 4) for n in (0, 4, 5, 8, 9, 16, 17)] == [1, 1, 2, 2, 4, 4, 8]
    with pytest.raises(ValueError, match="max_points must be at least 1, got 0"):
        bucket_width(10, 0)


@pytest.mark.parametrize("max_points", [1, 2, 5, 8, 300])
def test_from_scratch_buckets_are_means_of_power_of_two_runs(max_points):
    records = _records(1234)
    got = bucket_records(records, max_points)
    assert len(got) <= max_points
    _same(got, _oracle(records, max_points))
    assert bucket_records(records[:max_points], max_points) == tuple(records[:max_points])


def test_incremental_buckets_equal_from_scratch_over_random_lengths_and_chunks():
    rng = np.random.default_rng(1)
    for case in range(60):
        n = int(rng.integers(0, 3000))
        max_points = int(rng.choice([1, 2, 3, 7, 16, 200, 300]))
        records = _records(n, seed=case)
        buckets, at = Buckets(max_points), 0
        while at < n:  # arrivals of random size, checked after each
            k = int(rng.integers(1, 400))
            buckets.extend(records[at : at + k])
            at = min(n, at + k)
            assert len(buckets.records()) <= max_points
            _same(buckets.records(), _oracle(records[:at], max_points))
        assert buckets.count == n
        assert buckets.last == (records[-1] if records else None)


def test_a_step_with_other_layers_is_refused_with_what_differs():
    buckets = Buckets(10)
    buckets.extend(_records(2))
    odd = _records(1, start=3)[0]
    odd = StepRecord(**{**{f: getattr(odd, f) for f in odd.__slots__}, "weight_norms": ()})
    with pytest.raises(ValueError, match=r"step 3 has per-layer series of lengths \(3, 0, 3\)"):
        buckets.extend([odd])


def test_a_run_logs_chart_snapshot_is_its_snapshot_downsampled():
    log = RunLog(LAYERS)
    records = _records(2500, seed=3)
    for part in (records[:10], records[10:999], records[999:]):
        for r in part:
            log.append_step(r)
        log.append_eval(EvalRecord(step=part[-1].step, epoch=1.0, loss=0.5, accuracy=0.9))
        chart = log.chart_snapshot(300)
        whole = log.snapshot()
        _same(chart.steps, _oracle(whole.steps, 300))
        _same(whole.downsample(300).steps, _oracle(whole.steps, 300))
        assert chart.last == whole.steps[-1] == whole.downsample(300).last
        assert chart.evals == whole.evals and chart.version == whole.version
    log.append_event(Event(step=2500, kind="lr", detail="lr = 0.01"))
    assert log.chart_snapshot(300).events == log.snapshot().events


class CountingStore(RunStore):
    """The real store, counting the step rows each read returns."""

    rows: list[int]

    def snapshot(self, run_id, arm, *, after=0):
        snap = super().snapshot(run_id, arm, after=after)
        self.rows.append(len(snap.steps))
        return snap


def test_a_stored_logs_chart_refresh_reads_only_the_new_rows(tmp_path):
    store = CountingStore(tmp_path)
    store.rows = []
    spec = PRESETS["resnet8_narrow"].spec(input_shape=(3, 8, 8), num_classes=2)
    rid = store.create_run("ann", "long", arms={"a": spec}, config=TrainConfig(steps=10))
    writer = RunWriter(store, rid, every_s=60, every_n=100_000)
    writer.arm("a", layers=LAYERS)
    records = _records(3000, seed=4)
    view = StoredLog(store, rid, "a")
    for part, new in ((records[:2000], 2000), (records[2000:2007], 7), (records[2007:], 993)):
        for r in part:
            writer.step("a", r)
        writer.flush()
        store.rows.clear()
        chart = view.chart_snapshot(300)
        assert store.rows == [new]  # the rows stored since the last refresh, no more
        _same(chart.steps, _oracle(records[: part[-1].step], 300))
        assert chart.last == part[-1] and chart.meta["spec"]
    store.rows.clear()
    assert view.chart_snapshot(300).steps == chart.steps and store.rows == [0]
    assert json.loads(chart.meta["spec"]) == spec.to_dict()
    writer.arm("a", spec=spec.with_skips(False))  # a live toggle: the new spec is read
    writer.flush()
    assert json.loads(view.chart_snapshot(300).meta["spec"]) == spec.with_skips(False).to_dict()
    assert json.loads(view.snapshot().meta["spec_start"]) == spec.to_dict()
    writer.close()
