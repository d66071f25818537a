"""Downloads of a run: one tidy CSV per table (steps, evaluations, events) and the spec
of each net, zipped, so pandas or a spreadsheet reads each table on its own. Pure; no
streamlit."""

from __future__ import annotations

import csv
import io
import re
import zipfile

from core.telemetry import Snapshot

TABLES = ("steps", "evaluations", "events")


def tables(snapshot: Snapshot) -> dict[str, str]:
    """{table: CSV text}: the log's steps (with per-layer norms), evaluations and events.

    `Snapshot.to_csv` writes the three one after another, each after an empty row; here
    each becomes its own file with its own header row."""
    rows = list(csv.reader(io.StringIO(snapshot.to_csv())))
    parts: list[list[list[str]]] = [[]]
    for row in rows:
        if row:
            parts[-1].append(row)
        else:
            parts.append([])
    out = {}
    for name, part in zip(TABLES, parts, strict=True):
        text = io.StringIO()
        csv.writer(text).writerows(part)
        out[name] = text.getvalue()
    return out


def file_stem(text: str) -> str:
    """A name safe in any file system: letters, digits, '-', '_' and '.' only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "net"


def arm_zip(run_id: str, arm: str, snapshot: Snapshot) -> bytes:
    """One net of a run: steps.csv, evaluations.csv, events.csv and spec.json."""
    buf = io.BytesIO()
    folder = f"{file_stem(run_id)}_{file_stem(arm)}"
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in tables(snapshot).items():
            z.writestr(f"{folder}/{name}.csv", text)
        z.writestr(f"{folder}/spec.json", snapshot.meta.get("spec", "{}"))
    return buf.getvalue()
