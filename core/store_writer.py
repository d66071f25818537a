"""RunWriter: a run's records reach the store in batches, off the training thread.

The training loop hands each record over (a list append under a lock) and goes on; a
background thread writes them every `every_s` seconds or every `every_n` records,
whichever comes first, one transaction per batch. When the disk refuses (full, read-only),
records stay in memory, `saving` turns False with a message, and each later flush retries.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field

import torch
from torch import nn

from core.checkpoint import atomic_write, checkpoint_bytes
from core.spec import NetSpec
from core.store import RunStore, transaction
from core.store_records import ROW_BYTES, explain, step_row
from core.telemetry import EvalRecord, Event, RunLog, StepRecord


@dataclass
class _Batch:
    steps: list = field(default_factory=list)  # (arm, StepRecord)
    evals: list = field(default_factory=list)
    events: list = field(default_factory=list)
    arms: dict = field(default_factory=dict)  # arm -> {"spec_now"/"layers"/...: json}
    checkpoints: dict = field(default_factory=dict)  # arm -> bytes (the newest wins)

    def __len__(self) -> int:
        return len(self.steps) + len(self.evals) + len(self.events) + len(self.checkpoints)

    def extend(self, later: _Batch) -> None:
        """Put `later` after this batch (a failed flush's records go back in front)."""
        self.steps += later.steps
        self.evals += later.evals
        self.events += later.events
        for arm, values in later.arms.items():
            self.arms.setdefault(arm, {}).update(values)
        self.checkpoints |= later.checkpoints


class RunWriter:
    """Writes one run's steps, evaluations, events, specs and checkpoints.

    Args:
        store: the RunStore (open it in the writing process).
        run_id: a run made with `store.create_run`.
        every_s, every_n: flush after this many seconds or records, whichever first.
    """

    def __init__(self, store: RunStore, run_id: str, *, every_s: float = 1.0, every_n: int = 200):
        self.store, self.run_id = store, run_id
        self.every_s, self.every_n = every_s, every_n
        self.saving, self.message = store.saving, store.message
        self._pending = _Batch()
        self._lock = threading.Condition()
        self._flush_lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=f"store-{run_id}", daemon=True)
        self._thread.start()

    # -- what the training loop calls (cheap: no disk) ------------------------------------

    def _add(self, kind: str, item) -> None:
        with self._lock:
            getattr(self._pending, kind).append(item)
            if len(self._pending) >= self.every_n:
                self._lock.notify()

    def step(self, arm: str, record: StepRecord) -> None:
        self._add("steps", (arm, record))

    def eval(self, arm: str, record: EvalRecord) -> None:
        self._add("evals", (arm, record))

    def event(self, arm: str, event: Event) -> None:
        self._add("events", (arm, event))

    def arm(self, arm: str, *, spec: NetSpec | None = None, layers=None, param_names=None):
        """Record an arm's current spec (after a live toggle) or its telemetry rows."""
        values = {}
        if spec is not None:
            values["spec_now"] = spec.to_json()
        if layers is not None:
            values["layers"] = json.dumps(list(layers))
        if param_names is not None:
            values["param_names"] = json.dumps(list(param_names))
        with self._lock:
            self._pending.arms.setdefault(arm, {}).update(values)

    def checkpoint(
        self,
        arm: str,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        generators: dict[str, torch.Generator] | None = None,
        *,
        step: int,
        extra: dict | None = None,
    ) -> None:
        """Copy the arm's state now (a memory copy), write it with the next flush."""
        data = checkpoint_bytes(model, optimizer, generators, step=step, extra=extra)
        with self._lock:
            self._pending.checkpoints[arm] = data
            self._lock.notify()

    def log(self, arm: str, layers, param_names=(), meta=None) -> StoringRunLog:
        """A RunLog whose every append also goes to this writer (give it to the Trainer)."""
        self.arm(arm, layers=layers, param_names=param_names)
        return StoringRunLog(self, arm, layers, param_names, meta)

    # -- flushing ---------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._lock:
                # After a failed flush wait the full period: no busy retry on a full disk.
                due = len(self._pending) >= self.every_n and self.saving
                if not self._closed and not due:
                    self._lock.wait(self.every_s)
                closed = self._closed
            self.flush()
            if closed:
                return

    def flush(self) -> bool:
        """Write everything pending now, in one transaction; returns `saving`."""
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, _Batch()
            if not len(batch) and not batch.arms:
                return self.saving
            try:  # rows first: a checkpoint never runs ahead of the stored curve
                self._write_rows(batch)
                if self._write_files(batch):
                    self.store.refresh_file_bytes(self.run_id)
            except (sqlite3.Error, OSError) as e:
                with self._lock:  # keep them, in order, for the next try
                    batch.extend(self._pending)
                    self._pending = batch
                self.saving = False
                self.message = f"not being saved: {explain(e, self.store.path)}"
                return False
            self.saving = self.store.saving
            self.message = self.store.message
            return self.saving

    def _write_files(self, batch: _Batch) -> bool:
        if not batch.checkpoints or not self.store.saving:
            return False  # an in-memory store keeps no files: the run goes on regardless
        folder = self.store.run_dir(self.run_id)
        folder.mkdir(parents=True, exist_ok=True)
        for arm, data in list(batch.checkpoints.items()):
            atomic_write(self.store.checkpoint_path(self.run_id, arm), data)
            del batch.checkpoints[arm]  # written: a retry after a failure skips it
        return True

    def _write_rows(self, batch: _Batch) -> None:
        rid, db = self.run_id, self.store.connect()
        steps = [step_row(rid, arm, r) for arm, r in batch.steps]
        size = sum(ROW_BYTES + sum(len(b) for b in row[9:]) for row in steps)
        size += ROW_BYTES * len(batch.evals) + sum(
            ROW_BYTES + len(e.detail) for _, e in batch.events
        )
        with transaction(db):
            db.executemany(
                "INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", steps
            )
            db.executemany(
                "INSERT OR REPLACE INTO evals VALUES (?, ?, ?, ?, ?, ?)",
                [(rid, a, e.step, e.epoch, e.loss, e.accuracy) for a, e in batch.evals],
            )
            db.executemany(
                "INSERT INTO events (run_id, arm, step, kind, detail) VALUES (?, ?, ?, ?, ?)",
                [(rid, a, e.step, e.kind, e.detail) for a, e in batch.events],
            )
            for arm, values in batch.arms.items():
                sets = ", ".join(f"{k} = ?" for k in values)
                db.execute(
                    f"UPDATE arms SET {sets} WHERE run_id = ? AND arm = ?",
                    (*values.values(), rid, arm),
                )
            last = max((r.step for _, r in batch.steps), default=0)
            db.execute(
                "UPDATE runs SET step = MAX(step, ?), db_bytes = db_bytes + ? WHERE id = ?",
                (last, size, rid),
            )
        batch.steps, batch.evals, batch.events, batch.arms = [], [], [], {}  # stored

    def close(self) -> bool:
        """Flush what is left and stop the background thread; returns `saving`."""
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._thread.join()
        return self.flush()


class StoringRunLog(RunLog):
    """A RunLog that also hands every record to a RunWriter (same records, same order)."""

    def __init__(self, writer: RunWriter, arm: str, layers, param_names=(), meta=None):
        super().__init__(tuple(layers), tuple(param_names), meta)
        self.writer, self.arm = writer, arm

    def append_step(self, record: StepRecord) -> None:
        super().append_step(record)
        self.writer.step(self.arm, record)

    def append_eval(self, record: EvalRecord) -> None:
        super().append_eval(record)
        self.writer.eval(self.arm, record)

    def append_event(self, event: Event) -> None:
        super().append_event(event)
        self.writer.event(self.arm, event)
