"""app/exports.py and app/markup.py: each table its own tidy CSV that pandas reads back
whole, and names shown exactly as typed."""

import io
import zipfile

import pandas as pd

from app import exports
from app.markup import plain
from core.telemetry import Event
from tests.app.test_build_view import shown
from tests.app.test_figures import make_snapshot


def _snapshot():
    events = (Event(20, "skip", "block 1 off"), Event(30, "lr", 'lr 0.01, "quoted"\nline'))
    return make_snapshot(steps=40, events=events, eval_every=10)


def test_each_table_reads_back_whole_with_its_own_columns():
    snap = _snapshot()
    tables = {name: pd.read_csv(io.StringIO(text)) for name, text in exports.tables(snap).items()}
    steps, evals, events = tables["steps"], tables["evaluations"], tables["events"]
    assert list(steps["step"]) == list(range(1, 41))
    assert steps["loss"].tolist() == [2.0 / s for s in range(1, 41)]
    assert "grad_norm:blocks.0" in steps.columns and "update_ratio:head" in steps.columns
    assert steps.notna().all().all()  # no evaluation or event rows among the steps
    assert evals.to_dict("list") == {
        "eval_step": [10, 20, 30, 40],
        "epoch": [1.0, 2.0, 3.0, 4.0],
        "val_loss": [3.0 / s for s in (10, 20, 30, 40)],
        "val_accuracy": [0.5] * 4,
    }
    assert events["kind"].tolist() == ["skip", "lr"]
    assert events["detail"].tolist() == ["block 1 off", 'lr 0.01, "quoted"\nline']


def test_a_run_without_evaluations_or_events_still_has_three_tables():
    snap = make_snapshot(steps=3, eval_every=100)
    tables = exports.tables(snap)
    assert tables["evaluations"].strip() == "eval_step,epoch,val_loss,val_accuracy"
    assert tables["events"].strip() == "event_step,kind,detail"


def test_the_zip_of_one_net_holds_its_tables_and_spec():
    from core.presets import PRESETS

    spec = PRESETS["resnet8_narrow"].spec()
    snap = make_snapshot(steps=5, spec=spec)
    with zipfile.ZipFile(io.BytesIO(exports.arm_zip("run-3", "**b** [x](y)/..", snap))) as z:
        names = sorted(z.namelist())
        assert names == [
            f"run-3_b_x_y/{n}" for n in ("evaluations.csv", "events.csv", "spec.json", "steps.csv")
        ]
        assert z.read(names[2]).decode() == spec.to_json(indent=None)


def test_a_name_is_shown_literally_in_a_label():
    name = "**bold** [x](http://e) `code` ~s~ $m$ <b>"
    for text in (name, "ResNet-8 narrow · 16px"):
        assert shown(plain(text)) == text  # what a reader sees is what was typed
    assert "**" not in plain(name) and "[x](" not in plain(name)
