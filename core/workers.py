"""The process backend: every running run trains in its own spawned worker process, and
this (the server's) process only reads the run store and sends commands.

Channels. The store is what pages read and what survives a restart: the worker writes
metrics, events, specs and checkpoints there (batched, at most a second behind), and
`info`, `list` and `logs` read it, so a dead worker or a restarted server changes nothing
for a page. Commands go the other way through a `multiprocessing` Pipe per worker, as
JSON: the worker looks at its end of the pipe between steps (`poll()`, no disk, no
database query per step), and a stop or pause also raises a one-byte shared flag that the
Trainer's interrupt hook reads between blocks, so it lands within a fraction of a step.
A command to a run without a worker (queued, or paused and released) waits in memory.
The same pipe carries the worker's live state back (step, ETA, images/s) twice a second.

Faults. A monitor thread per worker waits on the pipe and on the process's sentinel; a
worker that dies without ending its run (an exception it could not report, `kill -9`,
the kernel's out-of-memory killer) leaves the run interrupted (resumable from its last
checkpoint) or failed, with the reason, and the next queued run starts. CPU workers run
under an address-space cap (core.worker_process.memory_cap), so an oversized run fails
with "ran out of memory at step N" inside its worker instead of taking the machine.

Restart. A new manager marks every run its store still calls queued, running or paused
as "interrupted at step N" (`RunStore.interrupt_active`): only one server may use a data
directory at a time. `resume` continues such a run from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing as mp
import os
import threading
import time
from multiprocessing.connection import wait as wait_any

from torch import nn

from core.arm_init import save_inits
from core.config import TrainConfig
from core.data import DataRequest, TensorData, data_root
from core.jobs_api import (
    JobError,
    JobInfo,
    JobManager,
    check_arms,
    check_command,
    free_gpu_bytes,
    on_gpu,
    release_message,
    running_refusal,
    training_bytes,
)
from core.run import ACTIVE, CANCELLED, INTERRUPTED, QUEUED, RUNNING, STOPPED, Command
from core.scheduler import Scheduler
from core.scheduling import Policy
from core.store import RunStore
from core.store_records import RunInfo, StoreError
from core.store_view import StoredLog, safe_arm_ids
from core.worker_process import data_to_bytes
from core.worker_process import main as worker_main
from core.worker_queue import SlotQueue
from core.worker_resume import copy_weights, prepare_resume, run_data
from core.worker_slots import Slot, display, job_info, mark_dead, start_bare

log = logging.getLogger("resnet_explorer.workers")
RECHECK_S = 1.0  # the monitor looks at a paused run's release time this often


class ProcessJobManager(SlotQueue, JobManager):
    """Runs jobs in worker processes, over a RunStore.

    Args:
        root: the data directory of the store (default: $RESNET_EXPLORER_DATA).
        max_running, max_per_owner, max_queue, pause_release_s, policy: as LocalJobManager.
        threads_per_job: torch intra-op threads per worker; default cores / max_running.
        checkpoint_every: steps between checkpoints (also at pause and at the end).
        flush_s: the longest a record waits in the worker before it is stored.
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        max_running: int = 1,
        max_per_owner: int = 3,
        max_queue: int = 50,
        threads_per_job: int | None = None,
        pause_release_s: float = 180.0,
        checkpoint_every: int = 100,
        flush_s: float = 1.0,
        policy: Policy | None = None,
    ):
        self.store = RunStore(root)
        self.max_running, self.max_per_owner, self.max_queue = max_running, max_per_owner, max_queue
        self.threads_per_job = threads_per_job or max(1, (os.cpu_count() or 1) // max_running)
        self.pause_release_s = pause_release_s
        self.checkpoint_every, self.flush_s = checkpoint_every, flush_s
        limits = {"max_cpu_runs": max_running, "max_per_owner": max_per_owner}
        self.policy = dataclasses.replace(policy or Policy(), max_queue=max_queue, **limits)
        self.scheduler = Scheduler(self.policy, free_gpu_bytes)
        self._scheduled: dict[str, list[dict]] = {}  # run -> commands sent for a later step
        self._out_of_time: dict[str, str] = {}  # run -> why it was told to stop
        self._ctx = mp.get_context("spawn")
        self._lock = threading.RLock()
        self._slots: dict[str, Slot] = {}
        self._queue: list[Slot] = []
        self._running: set[str] = set()
        self._logs: dict[str, dict[str, StoredLog]] = {}
        self.interrupted = self.store.interrupt_active()  # left by an earlier process

    # -- the interface ------------------------------------------------------------------

    def submit(
        self,
        owner,
        name,
        arms,
        data,
        config: TrainConfig,
        *,
        request: DataRequest | None = None,
        client: str | None = None,
    ) -> str:
        """Queue a run. `data`: the TensorData (handed to the worker when `request` is
        None, else only read here for its size and classes, the worker loads `request`)."""
        arms = check_arms(arms, config)
        if isinstance(data, DataRequest):
            data, request = None, data
        n = len(data.y_train) if data is not None else None
        config.validate(n)
        ids = safe_arm_ids([a.name for a in arms])
        stored = {  # "name": what the Runs page shows; "request": what a worker loads
            "name": request.name if request is not None else data.name,
            "request": dataclasses.asdict(request) if request is not None else None,
            "arms": {ids[a.name]: a.name for a in arms},
            "classes": list(data.classes) if data is not None else [],
            "root": str(data_root()),  # where the request's files are (uploads, downloads)
        }
        memory, gpu = training_bytes(arms, config.batch_size), on_gpu(config.device)
        steps = config.total_steps(n) if n else None
        with self._lock:
            active = len(self.store.list_runs(owner, status=ACTIVE))
            self._check(owner, client, active, steps, memory, gpu)
            job_id = self.store.create_run(
                owner,
                name,
                arms={ids[a.name]: a.spec for a in arms},
                config=config,
                data=stored,
                total_steps=config.total_steps(n) if n else 0,
            )
            save_inits(self.store, job_id, {ids[a.name]: a.init for a in arms})  # transfer
            slot = Slot(job_id, owner, name, ids, data if request is None else None, request)
            self._slots[job_id] = slot
            self.scheduler.add(job_id, owner, client, memory, gpu)
            self._queue.append(slot)
            self._start_next()
        return job_id

    def info(self, job_id: str, owner: str) -> JobInfo:
        return self._info(self._row(job_id, owner))

    def list(self, owner: str) -> list[JobInfo]:
        return [self._info(r) for r in reversed(self.store.list_runs(owner))]

    def logs(self, job_id: str, owner: str) -> dict[str, StoredLog]:
        row = self._row(job_id, owner)
        names = display(row)
        with self._lock:
            cached = self._logs.setdefault(job_id, {})
            for safe, shown in names.items():
                if shown not in cached:
                    cached[shown] = StoredLog(self.store, job_id, safe, {"arm": shown})
            return dict(cached)

    def send(self, job_id: str, owner: str, command: Command) -> None:
        """Deliver a command; a stop or pause lands within a fraction of a step."""
        row = self._row(job_id, owner)
        names = {v: k for k, v in display(row).items()}
        with self._lock:
            slot = self._slots.get(job_id)
            active_here = slot is not None or row.status not in ACTIVE
            check_command(row.name, row.status if active_here else INTERRUPTED, command, names)
            if command.arm is not None:
                command = dataclasses.replace(command, arm=names[command.arm])
            if slot.released:
                self._send_released(slot, row, command)
            else:
                self._deliver(slot, command)

    def cancel(self, job_id: str, owner: str) -> None:
        """Remove a queued job, or stop a running or paused one within a fraction of a step."""
        row = self._row(job_id, owner)
        with self._lock:
            slot = self._slots.get(job_id)
            if slot is None or row.status not in ACTIVE:
                return
            if slot in self._queue:
                self._queue.remove(slot)
                if slot.resume or slot.released:  # it has trained: stopped, as it stands
                    self.store.finish(job_id, STOPPED, f"stopped at step {row.step}")
                else:
                    self.store.finish(job_id, CANCELLED, "cancelled before it started")
                self.scheduler.leave(job_id)
                slot.done.set()
            elif slot.released:
                self._send_released(slot, row, Command("stop"))
            else:
                self._deliver(slot, Command("stop"))

    def delete(self, job_id: str, owner: str) -> None:
        row = self._row(job_id, owner)
        if row.status in ACTIVE:
            raise JobError(f"{row.name} is still {row.status}; stop it before deleting it")
        with self._lock:
            self.store.delete(job_id, owner)
            self._slots.pop(job_id, None)
            self._logs.pop(job_id, None)
            self._scheduled.pop(job_id, None)

    def copy_model(self, job_id: str, owner: str, arm: str) -> tuple[nn.Module, TensorData]:
        row = self._row(job_id, owner)
        if row.status in (QUEUED, RUNNING):
            raise running_refusal(row.name, row.status)
        names = {v: k for k, v in display(row).items()}
        if arm not in names:
            raise JobError(f"{row.name} has no trained network {arm!r}")
        net = copy_weights(self.store, row, names[arm])
        slot = self._slots.get(job_id)
        return net, run_data(row, slot.data if slot is not None else None, "explain it")

    def resume(self, job_id: str, owner: str) -> None:
        """Continue an interrupted run from its last checkpoint, same seed streams."""
        row = self._row(job_id, owner)
        with self._lock:
            if row.status != INTERRUPTED or job_id in self._running:
                super().resume(job_id, owner)  # refuses, saying why
            active = len(self.store.list_runs(owner, status=ACTIVE))
            terms = self._resume_terms(row)
            self._check(owner, None, active, None, *terms)
            slot = self._slots.get(job_id)
            data = run_data(row, slot.data if slot is not None else None, "resume it", load=False)
            prepare_resume(self.store, row)  # raises JobError without a checkpoint
            request = data if isinstance(data, DataRequest) else None
            data = None if request is not None else data
            ids = {v: k for k, v in display(row).items()}
            slot = Slot(job_id, owner, row.name, ids, data, request, resume=True)
            self._slots[job_id] = slot
            self._logs.pop(job_id, None)  # rows after the checkpoint are gone: read anew
            self.scheduler.add(job_id, owner, None, *terms)
            self._queue.append(slot)
            self._start_next()

    # -- for tests and shutdown -----------------------------------------------------------

    def wait(self, job_id: str, timeout: float = 60.0) -> str:
        """Block until the job has ended and its worker is gone (or `timeout`); its status."""
        with self._lock:
            slot = self._slots.get(job_id)
        if slot is not None:
            slot.done.wait(timeout)
        return self.store.run(job_id).status

    def worker_pid(self, job_id: str) -> int | None:
        with self._lock:
            slot = self._slots.get(job_id)
            return slot.process.pid if slot is not None and slot.process is not None else None

    def running_workers(self) -> int:
        with self._lock:
            return len(self._running)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop every worker (their runs become interrupted at the next start)."""
        with self._lock:
            procs = [s.process for s in self._slots.values() if s.process is not None]
        for p in procs:
            if p.is_alive():
                p.kill()
            p.join(timeout)

    # -- internals ------------------------------------------------------------------------

    def _row(self, job_id: str, owner: str) -> RunInfo:
        try:
            row = self.store.run(job_id)
        except StoreError:
            row = None
        if row is None or row.owner != owner:  # another owner's run does not exist for you
            raise JobError(f"there is no run {job_id!r} in this session")
        return row

    def _info(self, row: RunInfo) -> JobInfo:
        with self._lock:
            slot = self._slots.get(row.id)
            live = dict(slot.report) if slot is not None and row.id in self._running else {}
            position = self._positions().get(row.id)
        return job_info(self.store, row, live, position)

    def _spawn(self, slot: Slot) -> None:
        row = self.store.run(slot.id)
        specs = self.store.specs(slot.id)
        job = {
            "id": slot.id,
            "root": str(self.store.root),
            "config": row.config_json,
            "arms": {a: (now or start).to_json(indent=None) for a, (start, now) in specs.items()},
            "request": row.data.get("request"),
            "data_root": row.data.get("root"),
            "resume": slot.resume,
            "scheduled": self._scheduled.get(slot.id, []) if slot.resume else [],
            "threads": self.threads_per_job,
            "checkpoint_every": self.checkpoint_every,
            "flush_s": self.flush_s,
        }
        parent, child = self._ctx.Pipe(duplex=True)
        slot.flag = self._ctx.RawValue("b", 0)
        slot.conn, slot.ready, slot.report = parent, False, {}
        slot.paused_since, slot.releasing, slot.released = None, False, False
        slot.process = self._ctx.Process(
            target=worker_main, args=(json.dumps(job), child, slot.flag), daemon=True
        )
        self.store.update_run(slot.id, status=RUNNING, message="")
        start_bare(slot.process)
        child.close()
        self._running.add(slot.id)
        name = f"monitor-{slot.id}"
        threading.Thread(target=self._monitor, args=(slot,), name=name, daemon=True).start()

    def _monitor(self, slot: Slot) -> None:
        """Hand the worker its data, then follow it until it exits."""
        conn, proc = slot.conn, slot.process
        try:
            if slot.data is not None and slot.request is None:
                conn.send_bytes(data_to_bytes(slot.data))
        except OSError:
            pass  # it died first: the sentinel says so below
        with self._lock:
            slot.ready = True
            for command in slot.pending:
                self._deliver(slot, command)
            slot.pending.clear()
        while True:  # until the pipe is closed: every word the worker said is heard
            if conn in wait_any([conn, proc.sentinel], timeout=RECHECK_S):
                try:
                    message = json.loads(conn.recv_bytes())
                except (EOFError, OSError):
                    break
                with self._lock:
                    slot.hear(message)
            elif not proc.is_alive():
                break
            self._maybe_release(slot)
            self._check_time(slot)
        proc.join()
        conn.close()
        self._ended(slot, proc.exitcode)

    def _maybe_release(self, slot: Slot) -> None:
        """A run paused past `pause_release_s` gives its place to a waiting run."""
        with self._lock:
            since = slot.paused_since
            if since is None or slot.releasing or not self._queue:
                return
            if time.monotonic() - since < self.pause_release_s:
                return
            slot.releasing = True
            self.store.update_run(slot.id, message=release_message(self.pause_release_s))
            self._call(slot, {"kind": "release"})

    def _ended(self, slot: Slot, exitcode: int | None) -> None:
        with self._lock:
            self._running.discard(slot.id)
            self.scheduler.released(slot.id) if slot.released else self.scheduler.leave(slot.id)
            self._explain_stop(slot)
            slot.process = None
            try:
                row = self.store.run(slot.id)
            except StoreError:
                row = None
            if slot.released:
                pass  # paused, its state in its checkpoint: a resume starts a worker again
            elif row is not None and row.status in ACTIVE:  # died without ending its run
                message = mark_dead(self.store, row, exitcode)
                log.error("run %s (%s): %s", row.id, row.name, message)
            if not slot.released:
                slot.done.set()
            self._start_next()


__all__ = ["ProcessJobManager"]
