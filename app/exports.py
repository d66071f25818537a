"""Downloads of a run: one tidy CSV per table (steps, evaluations, events) and the spec
of each net, zipped, so pandas or a spreadsheet reads each table on its own. Pure; no
streamlit."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable

from app.live_figures import MAX_POINTS
from core.export import csv_table, step_columns
from core.telemetry import Snapshot

TABLES = ("steps", "evaluations", "events")


STEP_SCALARS = ("epoch", "loss", "accuracy", "lr", "images_per_s", "seconds")


def tables(snapshot: Snapshot) -> dict[str, str]:
    """{table: CSV text}: the log's steps (with per-layer gradient norms and update
    ratios), evaluations and events, each with its own header row. The steps table is
    written column-wise (core.export.csv_table): a long run's download takes seconds."""
    layers = snapshot.layers
    header = [
        "step",
        *STEP_SCALARS,
        *(f"grad_norm:{layer}" for layer in layers),
        *(f"update_ratio:{layer}" for layer in layers),
    ]
    columns = step_columns(snapshot.steps, STEP_SCALARS, ("grad_norms", "update_ratios"))
    out = {"steps": csv_table(header, columns, eol="\r\n")}
    small = {
        "evaluations": [["eval_step", "epoch", "val_loss", "val_accuracy"]]
        + [[e.step, e.epoch, e.loss, e.accuracy] for e in snapshot.evals],
        "events": [["event_step", "kind", "detail"]]
        + [[e.step, e.kind, e.detail] for e in snapshot.events],
    }
    for name, rows in small.items():
        text = io.StringIO()
        csv.writer(text).writerows(rows)
        out[name] = text.getvalue()
    return out


def file_stem(text: str) -> str:
    """A name safe in any file system: letters, digits, '-', '_' and '.' only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "net"


def arm_zip(run_id: str, arm: str, snapshot: Snapshot) -> bytes:
    """One net of a run: steps.csv, evaluations.csv, events.csv and spec.json."""
    buf = io.BytesIO()
    folder = f"{file_stem(run_id)}_{file_stem(arm)}"
    # Level 1: a few times faster than the default on a long log's CSV, about as small.
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name, text in tables(snapshot).items():
            z.writestr(f"{folder}/{name}.csv", text)
        z.writestr(f"{folder}/spec.json", snapshot.meta.get("spec", "{}"))
    return buf.getvalue()


def deferred_zip(run_id: str, arm: str, log) -> Callable[[], bytes]:
    """`arm_zip` of the log as it is when the reader clicks (st.download_button calls
    it then): a page that shows the button does not read and write a long log each time."""
    return lambda: arm_zip(run_id, arm, log.snapshot())


def spec_json(log) -> str:
    """The net's spec as JSON, from the log's chart snapshot (kept as steps arrive, so
    no page run rereads the whole log for it)."""
    return log.chart_snapshot(MAX_POINTS).meta.get("spec", "{}")
