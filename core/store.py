"""RunStore: every run's metrics, events and checkpoints, in one SQLite file (WAL) and
safetensors files beside it, readable by the pages while a worker writes.

Layout under the data directory: `runs.sqlite` and `runs/<run id>/<arm>.safetensors`.
A foreign or broken database is moved aside; a store that cannot write keeps runs in
memory, the stored ones copied in (core.store_readonly), and says so (`saving`,
`message`). No torch model code and no UI here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import sqlite3
import threading
import time
from pathlib import Path

from core.checkpoint import clean_temp_files
from core.config import TrainConfig
from core.data import data_root
from core.spec import NetSpec
from core.store_readonly import copy_stored, probe_writable, stored_note
from core.store_records import (
    INFO_QUERY,
    STEP_COLUMNS,
    RunInfo,
    StoreError,
    StoreFullError,
    explain,
    info_from_row,
    quota_refusal,
    step_from_row,
    stored_spec,
)
from core.store_schema import ensure_current, problem
from core.store_shares import token_matches, token_of
from core.telemetry import EvalRecord, Event, Snapshot

__all__ = ["RunInfo", "RunStore", "StoreError", "StoreFullError", "transaction"]

DB_NAME = "runs.sqlite"
BUSY_TIMEOUT_MS = 10_000  # a reader waits this long for a writer's lock, then gives up
INTERRUPTED = "interrupted"
ACTIVE = ("queued", "running", "paused")
_ARM_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")


class RunStore:
    """The run database and checkpoint folder under `root` (default: the data directory).

    Attributes:
        saving: False when nothing reaches the disk (read-only folder, a directory where
            the file should be); runs then live in an in-memory database.
        message: what the app should tell the user about the store, or "".
    """

    def __init__(self, root: str | os.PathLike | None = None, *, max_bytes: int | None = None):
        self.root = data_root(root)
        self.path = self.root / DB_NAME
        self.runs_dir = self.root / "runs"
        self.max_bytes = max_bytes  # cap on the database file; a full disk, on purpose
        self.saving, self.message = True, ""
        self._local = threading.local()
        self._uri: str | None = None
        self._anchor: sqlite3.Connection | None = None
        try:
            self._open_file()
        except (sqlite3.Error, OSError) as e:
            self._open_memory(f"not being saved: {explain(e, self.path)}")
            self.message += stored_note(*copy_stored(self.path, self._anchor))  # listed still

    # -- opening ------------------------------------------------------------------------

    def _open_file(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        why = self._inspect()
        if why:
            aside = self._move_aside()
            self.message = (
                f"the run database could not be used ({why}); it was moved aside to "
                f"{aside.name} and a fresh one started"
            )
        ensure_current(self.connect())
        self.runs_dir.mkdir(exist_ok=True)
        probe_writable(self.connect(), self.runs_dir)
        clean_temp_files(self.runs_dir)

    def _inspect(self) -> str | None:
        """Why the file at `path` is not ours, read without changing a byte; or None."""
        if not self.path.is_file():
            return None
        try:
            with contextlib.closing(
                sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True)
            ) as db:
                return problem(db)
        except sqlite3.DatabaseError as e:
            if "not a database" in str(e) or "malformed" in str(e):
                return "it is not an SQLite database (damaged, or another kind of file)"
            raise

    def _move_aside(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{DB_NAME}.broken-{stamp}-{secrets.token_hex(2)}")
        os.replace(self.path, aside)
        for suffix in ("-wal", "-shm"):
            extra = self.path.with_name(DB_NAME + suffix)
            if extra.exists():
                os.replace(extra, aside.with_name(aside.name + suffix))
        return aside

    def _open_memory(self, message: str) -> None:
        self._close_local()
        self.saving, self.message = False, message
        self._uri = f"file:resnet-explorer-{secrets.token_hex(6)}?mode=memory&cache=shared"
        # The in-memory database lives while one connection to it is open: this one,
        # apart from the per-thread ones that `close` ends.
        self._anchor = sqlite3.connect(self._uri, uri=True, isolation_level=None)
        ensure_current(self._anchor)

    def connect(self) -> sqlite3.Connection:
        """This thread's connection (sqlite3 connections are not shared across threads)."""
        db = getattr(self._local, "db", None)
        if db is None:
            if self._uri is not None:
                db = sqlite3.connect(self._uri, uri=True, isolation_level=None)
            else:
                db = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1e3)
                db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                if db.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
                    raise sqlite3.OperationalError("cannot switch the database to WAL mode")
                db.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at checkpoints
            if self.max_bytes is not None:
                page = db.execute("PRAGMA page_size").fetchone()[0]
                db.execute(f"PRAGMA max_page_count = {max(1, self.max_bytes // page)}")
            self._local.db = db
        return db

    def _close_local(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    def close(self) -> None:
        self._close_local()

    # -- writing run rows -----------------------------------------------------------------

    def create_run(
        self,
        owner: str,
        name: str,
        *,
        arms: dict[str, NetSpec],
        config: TrainConfig,
        data: dict | None = None,
        device: str = "",
        total_steps: int = 0,
        status: str = "queued",
        run_id: str | None = None,
    ) -> str:
        """Record a new run and its arms; returns its id.

        Raises:
            StoreFullError: the owner is at the cap on stored runs or bytes.
            StoreError: an arm name that cannot name a file.
        """
        for arm in arms:
            if not _ARM_NAME.fullmatch(arm):
                raise StoreError(f"the arm name {arm!r} cannot name a file", fix="use letters")
        self.check_quota(owner)
        run_id = run_id or secrets.token_hex(8)
        db = self.connect()
        with transaction(db):
            db.execute(
                "INSERT INTO runs (id, owner, name, status, created, config, data, device, "
                "total_steps) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    owner,
                    name,
                    status,
                    time.time(),
                    config.to_json(),
                    json.dumps(data or {}),
                    device,
                    total_steps,
                ),
            )
            db.executemany(
                "INSERT INTO arms (run_id, arm, position, spec_start, spec_now) "
                "VALUES (?, ?, ?, ?, ?)",
                [(run_id, a, i, s.to_json(), s.to_json()) for i, (a, s) in enumerate(arms.items())],
            )
        return run_id

    def update_run(self, run_id: str, **values) -> None:
        """Set columns of a run: status, message, ended, device, total_steps, results."""
        allowed = {"status", "message", "ended", "device", "total_steps", "results", "name"}
        if not values or not set(values) <= allowed:
            raise ValueError(f"update_run takes {sorted(allowed)}, got {sorted(values)}")
        if "results" in values:
            values["results"] = json.dumps(values["results"])
        sets = ", ".join(f"{k} = ?" for k in values)
        self.connect().execute(f"UPDATE runs SET {sets} WHERE id = ?", (*values.values(), run_id))

    def finish(self, run_id: str, status: str, message: str = "", results=None) -> None:
        """Mark a run ended with `status` (finished, stopped, failed, diverged, ...)."""
        self.update_run(
            run_id, status=status, message=message, ended=time.time(), results=results or {}
        )

    def interrupt_active(self, owner: str | None = None) -> list[str]:
        """Mark every queued, running or paused run as interrupted at its last stored
        step: call on start, when no worker of an earlier process can still be writing."""
        db = self.connect()
        q = f"SELECT id FROM runs WHERE status IN ({', '.join('?' * len(ACTIVE))})"
        args: tuple = ACTIVE
        if owner is not None:
            q, args = q + " AND owner = ?", (*ACTIVE, owner)
        ids = [r[0] for r in db.execute(q, args)]
        for run_id in ids:
            self.mark_interrupted(run_id)
        return ids

    def mark_interrupted(self, run_id: str) -> int:
        """Status 'interrupted', message 'interrupted at step N'; returns N."""
        db = self.connect()
        row = db.execute("SELECT MAX(step) FROM steps WHERE run_id = ?", (run_id,)).fetchone()
        step = row[0] or 0
        db.execute(
            "UPDATE runs SET status = ?, message = ?, step = ? WHERE id = ?",
            (INTERRUPTED, f"interrupted at step {step}", step, run_id),
        )
        return step

    # -- reading --------------------------------------------------------------------------

    def list_runs(self, owner: str, status: str | tuple[str, ...] | None = None) -> list[RunInfo]:
        """An owner's runs, newest first; `status` filters ('finished' or a tuple)."""
        q, args = INFO_QUERY + " WHERE r.owner = ?", [owner]
        if status is not None:
            wanted = (status,) if isinstance(status, str) else tuple(status)
            q += f" AND r.status IN ({', '.join('?' * len(wanted))})"
            args += wanted
        rows = self.connect().execute(q + " ORDER BY r.created DESC", args).fetchall()
        return [info_from_row(r) for r in rows]

    def uploads_in_use(self) -> set[str]:
        """The digests of the uploaded zips that stored runs (of anyone) trained on: kept
        on disk while a run may be resumed or explained."""
        rows = self.connect().execute("SELECT data FROM runs").fetchall()
        requests = (json.loads(r[0] or "{}").get("request") or {} for r in rows)
        return {q["upload"] for q in requests if isinstance(q, dict) and q.get("upload")}

    def run(self, run_id: str) -> RunInfo:
        row = self.connect().execute(INFO_QUERY + " WHERE r.id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(
                "this run is not stored (it may have been deleted)",
                where=f"run {run_id}",
                fix="open the Runs page to see the runs there are",
            )
        return info_from_row(row)

    def specs(self, run_id: str) -> dict[str, tuple[NetSpec | None, NetSpec | None]]:
        """{arm: (spec it started from, spec as it is now)}."""
        rows = self.connect().execute(
            "SELECT arm, spec_start, spec_now FROM arms WHERE run_id = ? ORDER BY position",
            (run_id,),
        )
        return {a: (stored_spec(s0), stored_spec(s1)) for a, s0, s1 in rows}

    def snapshot(self, run_id: str, arm: str, *, after: int = 0) -> Snapshot:
        """One arm's steps (those after step `after`), evaluations and events, as the
        Snapshot a live RunLog gives; `version` is the last stored step."""
        db = self.connect()
        row = db.execute(
            "SELECT layers, param_names FROM arms WHERE run_id = ? AND arm = ?", (run_id, arm)
        ).fetchone()
        layers, params = (json.loads(row[0]), json.loads(row[1])) if row else ([], [])
        steps = tuple(
            step_from_row(r)
            for r in db.execute(
                f"SELECT {STEP_COLUMNS} FROM steps WHERE run_id = ? AND arm = ? AND step > ? "
                "ORDER BY step",
                (run_id, arm, after),
            )
        )
        evals = tuple(
            EvalRecord(step=s, epoch=e, loss=lo, accuracy=a)
            for s, e, lo, a in db.execute(
                "SELECT step, epoch, loss, accuracy FROM evals "
                "WHERE run_id = ? AND arm = ? ORDER BY step",
                (run_id, arm),
            )
        )
        version = steps[-1].step if steps else after
        return Snapshot(
            layers=tuple(layers),
            param_names=tuple(params),
            steps=steps,
            evals=evals,
            events=tuple(self.events(run_id, arm)),
            version=version,
            meta={"run": run_id, "arm": arm},
        )

    def events(self, run_id: str, arm: str | None = None) -> list[Event]:
        q, args = "SELECT step, kind, detail FROM events WHERE run_id = ?", [run_id]
        if arm is not None:
            q, args = q + " AND arm = ?", [run_id, arm]
        rows = self.connect().execute(q + " ORDER BY id", args)
        return [Event(step=s, kind=k, detail=d) for s, k, d in rows]

    # -- files, deletion, retention -----------------------------------------------------

    def run_dir(self, run_id: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", run_id):
            raise StoreError(f"{run_id!r} is not a run id", fix="open a run from the Runs page")
        return self.runs_dir / run_id

    def checkpoint_path(self, run_id: str, arm: str) -> Path:
        return self.run_dir(run_id) / f"{arm}.safetensors"

    def delete(self, run_id: str, owner: str) -> None:
        """Delete a run, its rows and its files. Only its owner may."""
        if self.run(run_id).owner != owner:
            raise StoreError("this run belongs to someone else", where=f"run {run_id}")
        db = self.connect()
        with transaction(db):
            for table in ("steps", "evals", "events", "arms", "shares"):
                db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)

    def share_token(self, run_id: str, owner: str) -> str:
        """The run's read-only share token (made on first call). Only its owner may ask."""
        if self.run(run_id).owner != owner:
            raise StoreError("this run belongs to someone else", where=f"run {run_id}")
        return token_of(self.connect(), run_id)

    def shared_run(self, run_id: str, token: object) -> RunInfo | None:
        """The run a share link `?run=run_id&view=token` opens, or None for a wrong link."""
        if not isinstance(run_id, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", run_id):
            return None
        if not token_matches(self.connect(), run_id, token):
            return None
        try:
            return self.run(run_id)
        except StoreError:
            return None

    def usage(self, owner: str) -> tuple[int, int]:
        """(runs, bytes) an owner has stored."""
        row = (
            self.connect()
            .execute(
                "SELECT COUNT(*), COALESCE(SUM(db_bytes + file_bytes), 0) FROM runs "
                "WHERE owner = ?",
                (owner,),
            )
            .fetchone()
        )
        return row[0], row[1]

    def check_quota(self, owner: str) -> None:
        """Raises StoreFullError when `owner` is at the cap on stored runs or bytes."""
        refusal = quota_refusal(*self.usage(owner))
        if refusal is not None:
            raise refusal

    def refresh_file_bytes(self, run_id: str) -> int:
        folder = self.run_dir(run_id)
        size = sum(f.stat().st_size for f in folder.glob("*.safetensors")) if folder.is_dir() else 0
        self.connect().execute("UPDATE runs SET file_bytes = ? WHERE id = ?", (size, run_id))
        return size


@contextlib.contextmanager
def transaction(db: sqlite3.Connection):
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error: all of it or none."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.in_transaction:  # SQLite may have rolled back already (a full disk)
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
