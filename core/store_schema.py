"""The run store's SQLite schema, its versions and the migrations between them.

`PRAGMA user_version` holds the version. Version 1 was the first minimal store (runs and
their loss curves); version 2 keeps everything a run needs to be seen, compared, exported
and resumed. Each migration runs in one transaction: a crash mid-way leaves version 1.
"""

from __future__ import annotations

import sqlite3

from core.store_shares import SHARES_TABLE
from core.words import say

CURRENT = 2

_RUNS_V1 = """
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    ended REAL,
    config TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT ''{more}
);
"""
_STEPS_V1 = """
CREATE TABLE steps (
    run_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    loss REAL NOT NULL,
    accuracy REAL NOT NULL,
    PRIMARY KEY (run_id, step)
);
"""

# Per-layer series are float64 BLOBs (numpy's tobytes): exact, and 8 bytes a number
# against about 20 as JSON text (bench/store_overhead.py measures both).
_V2_TABLES = (
    """
CREATE TABLE arms (
    run_id TEXT NOT NULL,
    arm TEXT NOT NULL,
    position INTEGER NOT NULL DEFAULT 0,
    spec_start TEXT NOT NULL DEFAULT '',
    spec_now TEXT NOT NULL DEFAULT '',
    layers TEXT NOT NULL DEFAULT '[]',
    param_names TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (run_id, arm)
);
CREATE TABLE steps (
    run_id TEXT NOT NULL,
    arm TEXT NOT NULL,
    step INTEGER NOT NULL,
    epoch REAL NOT NULL DEFAULT 0,
    loss REAL NOT NULL,
    accuracy REAL NOT NULL,
    lr REAL NOT NULL DEFAULT 0,
    images_per_s REAL NOT NULL DEFAULT 0,
    seconds REAL NOT NULL DEFAULT 0,
    grad_norms BLOB NOT NULL DEFAULT x'',
    weight_norms BLOB NOT NULL DEFAULT x'',
    update_ratios BLOB NOT NULL DEFAULT x'',
    PRIMARY KEY (run_id, arm, step)
) WITHOUT ROWID;
CREATE TABLE evals (
    run_id TEXT NOT NULL,
    arm TEXT NOT NULL,
    step INTEGER NOT NULL,
    epoch REAL NOT NULL,
    loss REAL NOT NULL,
    accuracy REAL NOT NULL,
    PRIMARY KEY (run_id, arm, step)
) WITHOUT ROWID;
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    arm TEXT NOT NULL,
    step INTEGER NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX events_by_run ON events (run_id, arm, id);
CREATE INDEX runs_by_owner ON runs (owner, created);
"""
    + SHARES_TABLE
)

_V2_RUN_COLUMNS = (
    "data TEXT NOT NULL DEFAULT '{}'",
    "device TEXT NOT NULL DEFAULT ''",
    "results TEXT NOT NULL DEFAULT '{}'",
    "step INTEGER NOT NULL DEFAULT 0",
    "total_steps INTEGER NOT NULL DEFAULT 0",
    "db_bytes INTEGER NOT NULL DEFAULT 0",
    "file_bytes INTEGER NOT NULL DEFAULT 0",
)

# The tables and columns version 2 must have; a file claiming our version without them
# is someone else's database.
EXPECTED = {
    "runs": {"id", "owner", "name", "status", "created", "ended", "config", "message"}
    | {c.split()[0] for c in _V2_RUN_COLUMNS},
    "arms": {"run_id", "arm", "spec_start", "spec_now", "layers", "param_names"},
    "steps": {"run_id", "arm", "step", "loss", "grad_norms"},
    "evals": {"run_id", "arm", "step", "loss", "accuracy"},
    "events": {"run_id", "arm", "step", "kind", "detail"},
}


def create_v1(db: sqlite3.Connection) -> None:
    """The version-1 store, as the first release wrote it (tests migrate from it)."""
    runs = _RUNS_V1.format(more="")
    db.executescript(f"BEGIN; {runs} {_STEPS_V1} PRAGMA user_version = 1; COMMIT;")


def create_current(db: sqlite3.Connection) -> None:
    runs = _RUNS_V1.format(more="".join(f",\n    {c}" for c in _V2_RUN_COLUMNS))
    db.executescript(f"BEGIN; {runs} {_V2_TABLES} PRAGMA user_version = {CURRENT}; COMMIT;")


def _migrate_1_to_2(db: sqlite3.Connection) -> None:
    """Add the run columns, give every step an arm ('main': v1 runs had one network),
    and add the arms, evaluations and events tables."""
    adds = "".join(f"ALTER TABLE runs ADD COLUMN {c};\n" for c in _V2_RUN_COLUMNS)
    db.executescript(
        f"""BEGIN;
        {adds}
        ALTER TABLE steps RENAME TO steps_v1;
        {_V2_TABLES}
        INSERT INTO steps (run_id, arm, step, loss, accuracy)
            SELECT run_id, 'main', step, loss, accuracy FROM steps_v1;
        INSERT INTO arms (run_id, arm) SELECT id, 'main' FROM runs;
        UPDATE runs SET step = COALESCE(
            (SELECT MAX(step) FROM steps_v1 WHERE steps_v1.run_id = runs.id), 0);
        DROP TABLE steps_v1;
        PRAGMA user_version = 2;
        COMMIT;"""
    )


MIGRATIONS = {1: _migrate_1_to_2}


def version(db: sqlite3.Connection) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def tables(db: sqlite3.Connection) -> dict[str, set[str]]:
    names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {n: {r[1] for r in db.execute(f'PRAGMA table_info("{n}")')} for n in names}


def problem(db: sqlite3.Connection) -> str | None:
    """Why this file is not a store we can use, or None; reads only, changes nothing."""
    v, found = version(db), tables(db)
    if v == 0:
        return say("it is an SQLite database of another program") if found else None
    if v > CURRENT:
        return say("it was written by a newer ResNet Explorer (store version {v})", v=v)
    if v == 1 and not {"runs", "steps"} <= set(found):
        return say("it claims store version 1 but lacks its tables")
    if v == CURRENT:
        for table, columns in EXPECTED.items():
            if not columns <= found.get(table, set()):
                return say("its table {table!r} is not the store's", table=table)
    return None


def ensure_current(db: sqlite3.Connection) -> None:
    """Create the schema in an empty file, or migrate an older one to the current."""
    v = version(db)
    if v == 0:
        create_current(db)
    while v < CURRENT and v > 0:
        MIGRATIONS[v](db)
        v = version(db)
    # Version 2 is not released yet: a file of an earlier version-2 build lacks only this.
    db.executescript(SHARES_TABLE)
