"""Export a stored run as one zip a learner can take home; `core.run_import` reads it back.

The zip holds `run.json` (name, status, dates, data, each arm's starting spec),
`config.json`, per arm `spec-<arm>.json`, `metrics-<arm>.csv` and
`weights-<arm>.safetensors`, then `evaluations.csv`, `events.json` and `model.py`: a
standalone PyTorch file that rebuilds every arm from its spec and loads its weights.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from operator import attrgetter
from pathlib import Path

import numpy as np
from safetensors.torch import save as st_save

from core.checkpoint import read_checkpoint
from core.store import RunStore

FORMAT = 1
ARM = r"[A-Za-z0-9_-]{1,40}"
FIXED_COLUMNS = ("step", "epoch", "loss", "accuracy", "lr", "images_per_s", "seconds")
SERIES = (  # CSV column prefix -> StepRecord field, one column per layer
    ("grad_norm", "grad_norms"),
    ("weight_norm", "weight_norms"),
    ("update_ratio", "update_ratios"),
)
EVAL_COLUMNS = ("arm", "step", "epoch", "val_loss", "val_accuracy")
_SPECS_LINE = "SPECS: dict[str, dict] = {}  # arm -> spec, filled in by the export"


def entry_names(arms) -> set[str]:
    """Every name a run zip may hold (anything else is refused on import)."""
    shared = {"run.json", "config.json", "evaluations.csv", "events.json", "model.py"}
    per_arm = {f"{kind}-{a}.{ext}" for a in arms for kind, ext in _PER_ARM}
    return shared | per_arm


_PER_ARM = (("spec", "json"), ("metrics", "csv"), ("weights", "safetensors"))


def export_run(store: RunStore, run_id: str) -> bytes:
    """The run as zip bytes. Arms without a checkpoint are exported without weights."""
    info = store.run(run_id)
    specs = store.specs(run_id)
    meta = {
        "format": FORMAT,
        "name": info.name,
        "status": info.status,
        "message": info.message,
        "created": info.created,
        "ended": info.ended,
        "device": info.device,
        "data": info.data,
        "total_steps": info.total_steps,
        "results": info.results,
        "arms": list(info.arms),
        "spec_start": {a: s.to_dict() for a, (s, _) in specs.items() if s is not None},
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("run.json", json.dumps(meta, indent=2))
        z.writestr("config.json", info.config_json)
        current = {a: (now or start) for a, (start, now) in specs.items()}
        evals, events = [], []
        for arm in info.arms:
            snap = store.snapshot(run_id, arm)
            if current.get(arm) is not None:
                z.writestr(f"spec-{arm}.json", current[arm].to_json())
            z.writestr(f"metrics-{arm}.csv", metrics_csv(snap))
            evals += [(arm, e.step, e.epoch, e.loss, e.accuracy) for e in snap.evals]
            events += [
                {"arm": arm, "step": e.step, "kind": e.kind, "detail": e.detail}
                for e in snap.events
            ]
            weights = _weights(store.checkpoint_path(run_id, arm), current.get(arm))
            if weights is not None:
                z.writestr(f"weights-{arm}.safetensors", weights, zipfile.ZIP_STORED)
        z.writestr("evaluations.csv", _csv([EVAL_COLUMNS, *(map(_cell, e) for e in evals)]))
        z.writestr("events.json", json.dumps(events, indent=1))
        z.writestr("model.py", standalone_source(current))
    return out.getvalue()


def metrics_csv(snap) -> str:
    """Every step: the scalars, then each per-layer series (floats exact: the shortest
    text that reads back to the same float)."""
    series = []
    for prefix, field in SERIES:
        names = snap.layers
        first = getattr(snap.steps[0], field) if snap.steps else names
        if names and len(first) == len(names):
            series.append((prefix, field, names))
    header = [*FIXED_COLUMNS, *(f"{p}:{n}" for p, _, names in series for n in names)]
    return csv_table(header, step_columns(snap.steps, FIXED_COLUMNS[1:], [f for _, f, _ in series]))


def step_columns(steps, scalars, series=()) -> list[np.ndarray]:
    """The columns of a steps table: `step` (integers), each of `scalars` (StepRecord
    field names), then each per-layer series (one column per layer)."""
    n = len(steps)
    out = [np.fromiter(map(attrgetter("step"), steps), dtype=np.int64, count=n)]
    if scalars:  # attrgetter of several names: one C call a step gives its tuple
        values = np.array(list(map(attrgetter(*scalars), steps)), dtype=np.float64)
        out += list(values.reshape(n, len(scalars)).T)
    for field in series:
        matrix = np.array(list(map(attrgetter(field), steps)), dtype=np.float64)
        out += list(matrix.reshape(n, -1).T)
    return out


def csv_table(header, columns, *, eol: str = "\n") -> str:
    """A CSV table: `header`, then `columns` (equal-length arrays) row by row, integers as
    integers and floats exact (shortest round-trip text: 0.1, 1e-30, nan, inf). Written
    by Arrow's C++ CSV writer (pyarrow, which streamlit needs too): a 300,000-step log
    in seconds where csv.writer took over a minute (bench/refresh_cost.py)."""
    import pyarrow as pa  # here: core imports without it, only an export needs it
    import pyarrow.csv as pa_csv

    head = io.StringIO()
    csv.writer(head, lineterminator=eol).writerow(header)
    if not columns or not len(columns[0]):
        return head.getvalue()
    table = pa.table({str(i): np.ascontiguousarray(c) for i, c in enumerate(columns)})
    body = io.BytesIO()
    pa_csv.write_csv(table, body, pa_csv.WriteOptions(include_header=False, eol=eol))
    return head.getvalue() + body.getvalue().decode()


def _cell(v) -> str:
    return repr(float(v)) if isinstance(v, float) else str(v)


def _csv(rows) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def _weights(path: Path, spec) -> bytes | None:
    """The model tensors of an arm's checkpoint, as a plain state_dict safetensors file."""
    if spec is None or not path.is_file():
        return None
    tensors, _ = read_checkpoint(path)
    state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    return st_save(state, metadata={"spec": spec.to_json(indent=None)})


def standalone_source(specs: dict) -> str:
    """core/standalone.py with the arms' specs written into it."""
    source = (Path(__file__).with_name("standalone.py")).read_text()
    text = json.dumps({a: s.to_dict() for a, s in specs.items() if s is not None}, indent=4)
    literal = f"r'''{text}'''" if "'''" not in text and "\\" not in text else repr(text)
    assert source.count(_SPECS_LINE) == 1, "core/standalone.py lost its SPECS line"
    return source.replace(_SPECS_LINE, f"SPECS: dict[str, dict] = json.loads({literal})")


def safe_arm_name(name: str) -> bool:
    return re.fullmatch(ARM, name) is not None
