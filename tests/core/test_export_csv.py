"""The column-wise CSV writer behind the exports: every float reads back exactly, steps
stay whole numbers, and the text is a plain CSV with one header row."""

import csv
import io

import numpy as np

from core.export import csv_table, metrics_csv, step_columns
from core.telemetry import RunLog, StepRecord

HARD = [0.1, 1 / 3, 1e-30, 1e-5, 123456789.125, -2.5e300, 5e-324, float("inf"), float("nan")]


def test_floats_read_back_exactly_and_steps_stay_whole():
    rng = np.random.default_rng(0)
    floats = np.array(HARD + rng.lognormal(-5, 8, 991).tolist())
    steps = np.arange(1, len(floats) + 1)
    text = csv_table(["step", "value:a.b"], [steps, floats])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["step", "value:a.b"] and len(rows) == 1 + len(floats)
    assert [r[0] for r in rows[1:]] == [str(s) for s in steps]
    back = np.array([float(r[1]) for r in rows[1:]])
    assert np.array_equal(back, floats, equal_nan=True)
    assert csv_table(["step"], [np.array([], dtype=np.int64)]) == "step\n"


def test_metrics_csv_is_every_step_with_its_per_layer_series():
    log = RunLog(("stem", "head"))
    for s in range(1, 4):
        log.append_step(
            StepRecord(
                step=s,
                epoch=s / 3,
                loss=1 / s,
                accuracy=0.5,
                lr=0.1,
                grad_norms=(s * 1e-3, 1 / 7),
                weight_norms=(1.0, 2.0),
                update_ratios=(1e-30, 0.25),
                images_per_s=10.5,
                seconds=s * 0.1,
            )
        )
    rows = list(csv.reader(io.StringIO(metrics_csv(log.snapshot()))))
    assert rows[0][:7] == ["step", "epoch", "loss", "accuracy", "lr", "images_per_s", "seconds"]
    assert rows[0][7:] == [
        *("grad_norm:stem", "grad_norm:head", "weight_norm:stem", "weight_norm:head"),
        *("update_ratio:stem", "update_ratio:head"),
    ]
    for s, row in enumerate(rows[1:], 1):
        assert row[0] == str(s) and float(row[2]) == 1 / s and float(row[8]) == 1 / 7
        assert float(row[11]) == 1e-30 and float(row[6]) == s * 0.1
    columns = step_columns(log.snapshot().steps, ("loss",), ("grad_norms",))
    assert [c.tolist() for c in columns] == [
        [1, 2, 3],
        [1, 1 / 2, 1 / 3],
        [1e-3, 2e-3, 3e-3],
        [1 / 7] * 3,
    ]
