"""The body of one worker process (started by `core.workers.ProcessJobManager`): it builds
the run, trains it, writes every record and checkpoint to the store, obeys commands from
its pipe and reports its state back on the same pipe.

Everything that crosses the pipe is JSON text (and, for data handed over by a test,
safetensors bytes): nothing is unpickled here but multiprocessing's own handles.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import time
from resource import RLIMIT_AS

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from core.arm_init import load_init
from core.config import TrainConfig
from core.data import DataRequest, TensorData, load
from core.plan import check_memory, make_plan
from core.run import ACTIVE, FINISHED, PAUSED, RUNNING, Arm, Command, Run, failure_message
from core.run_state import checkpoint_run, restore_trainer
from core.spec import NetSpec
from core.store import RunStore
from core.store_writer import RunWriter
from core.telemetry import Event
from core.words import say
from core.worker_slots import INTERRUPTED_AT

REPORT_EVERY_S = 0.5
MEMORY_ENV = "RESNET_EXPLORER_WORKER_MEMORY_MB"
NICE_ENV = "RESNET_EXPLORER_WORKER_NICE"
# Workers yield the CPU to the server: at niceness 10 the kernel gives a busy server
# process about nine times a worker's share, so pages and /_stcore/health answer while
# every core trains (tests/e2e/test_health.py prints the effect).
WORKER_NICE = 10
MEMORY_MARGIN = 3.0  # the plan's estimate times this, on top of what the process maps
MEMORY_BASE = 1024**3  # for allocator slack, cached batches and evaluation


class ServerGone(Exception):
    """The server's end of the pipe closed: it was killed or restarted."""


# -- data over the pipe ------------------------------------------------------------------


def data_to_bytes(data: TensorData) -> bytes:
    """A TensorData as safetensors bytes with its names and statistics in the metadata."""
    tensors = {k: v.cpu().contiguous() for k, v in data._tensors().items() if v is not None}
    meta = {"name": data.name, "classes": list(data.classes)}
    meta |= {"mean": list(data.mean), "std": list(data.std)}
    return st_save(tensors, metadata={"data": json.dumps(meta)})


def data_from_bytes(raw: bytes) -> TensorData:
    tensors = st_load(raw)
    n = int.from_bytes(raw[:8], "little")
    meta = json.loads(json.loads(raw[8 : 8 + n])["__metadata__"]["data"])
    return TensorData(
        name=meta["name"],
        classes=tuple(meta["classes"]),
        mean=tuple(meta["mean"]),
        std=tuple(meta["std"]),
        **tensors,
    )


# -- the memory cap ------------------------------------------------------------------------


def _mapped_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def memory_cap(arms, config: TrainConfig) -> int | None:
    """RLIMIT_AS for a CPU worker: what it maps now (torch, the data) plus the plan's
    estimate with a margin, at most $RESNET_EXPLORER_WORKER_MEMORY_MB. None on CUDA or
    MPS (their drivers reserve huge address ranges: a cap there would fail at once) and
    where /proc is missing."""
    if config.device not in ("cpu",) and (
        torch.cuda.is_available() or torch.backends.mps.is_available()
    ):
        return None
    try:
        now = _mapped_bytes()
    except OSError:
        return None
    need = sum(check_memory(make_plan(a.spec), config.batch_size) for a in arms)
    cap = now + MEMORY_BASE + int(need * MEMORY_MARGIN)
    hard = os.environ.get(MEMORY_ENV, "").strip()
    if hard.isdigit() and int(hard) > 0:
        cap = min(cap, int(hard) * 2**20)
    return cap


def _out_of_memory(error: BaseException) -> bool:
    """Under the cap, a failed mmap shows up as other errors too (a lazy import)."""
    text = str(error).lower()
    return isinstance(error, MemoryError) or any(
        words in text for words in ("failed to map", "cannot allocate memory", "can't allocate")
    )


# -- the worker ------------------------------------------------------------------------------


class Worker:
    def __init__(self, job: dict, conn, flag):
        self.job, self.conn, self.flag = job, conn, flag
        self.id = job["id"]
        self.store = RunStore(job["root"])
        self.writer = RunWriter(self.store, self.id, every_s=job.get("flush_s", 1.0))
        self.run: Run | None = None
        self.reported = 0.0
        self.last_checkpoint = 0
        self.capped = False

    def send(self, **values) -> None:
        with contextlib.suppress(OSError, ValueError):  # the server is gone: the store
            self.conn.send_bytes(json.dumps(values).encode())  # still has everything

    def report(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.reported < REPORT_EVERY_S:
            return
        self.reported, run = now, self.run
        self.send(
            kind="report",
            status=run.status,
            step=run.step_count,
            total=run.total_steps,
            eta=run.eta_seconds,
            rate=run.rate,
            message=run.message,
            device=run.device,
            classes=list(run.classes),
            # The disk refused the last flush (full, or made read-only): the page says so.
            not_saved="" if self.writer.saving else self.writer.message,
        )

    def load_data(self) -> TensorData:
        if self.job.get("request") is not None:
            return load(DataRequest(**self.job["request"]), root=self.job.get("data_root"))
        return data_from_bytes(self.conn.recv_bytes())  # handed over once, by a test

    def build(self) -> Run:
        config = TrainConfig.from_json(self.job["config"])
        arms = [  # an arm with initial weights (a transfer) finds them beside its checkpoint
            Arm(a, NetSpec.from_json(s), load_init(self.store, self.id, a))
            for a, s in self.job["arms"].items()
        ]
        data = self.load_data()
        cap = memory_cap(arms, config)
        if cap is not None:
            self.capped = True
            torch.ones(64, 64) @ torch.ones(64, 64)  # start the intra-op threads first
            # The soft limit only: after a MemoryError the worker lifts it again to store
            # the failure (a hard limit could not be raised back).
            resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(RLIMIT_AS)[1]))
        run = Run(
            arms,
            data,
            config,
            interrupt=lambda: self.flag.value != 0,
            log_factory=lambda arm, layers, names: self.writer.log(arm, layers, names),
        )
        if self.job.get("resume"):
            for name, t in run.trainers.items():
                step = restore_trainer(t, self.store.checkpoint_path(self.id, name))
                detail = say("resumed from its checkpoint at step {step}", step=step)
                t.log.append_event(Event(step=step, kind="resume", detail=detail))
            self.last_checkpoint = run.step_count
        return run

    def main(self) -> None:
        try:
            self.run = run = self.build()
            self.store.update_run(
                self.id,
                status=RUNNING,
                message="",
                device=run.device,
                total_steps=run.total_steps,
                results={"classes": list(run.classes)},
            )
            self.reschedule(run)
            self.report(force=True)
            self.drive(run)
        except ServerGone:
            self.orphaned()
            return
        except BaseException as e:  # MemoryError and the rest: this run ends, said why
            _, hard = resource.getrlimit(RLIMIT_AS)
            resource.setrlimit(RLIMIT_AS, (hard, hard))  # room to write the failure
            step = self.run.step_count + 1 if self.run is not None else None
            if self.capped and _out_of_memory(e):  # a library that could not be mapped
                e = MemoryError(str(e))
            message = failure_message(e, step)
            if self.run is not None:
                self.run.fail(message)
            self.writer.close()
            self.store.finish(self.id, "failed", message)
            self.send(kind="failed", message=message, error=repr(e)[:2000])
            return
        self.end(run)

    def drive(self, run: Run) -> None:
        every = self.job.get("checkpoint_every", 100)
        while not run.ended:
            self.flag.value = 0  # then take every waiting command
            if self.commands(run) == "release":
                return
            if run.status == PAUSED:
                if self.paused(run):
                    return
                continue
            before = (run.status, run.spec_changes)
            run.step()
            self.landed(run, *before)
            if run.step_count - self.last_checkpoint >= every and not run.ended:
                self.checkpoint(run)
            self.report()

    def commands(self, run: Run, timeout: float = 0.0) -> str | None:
        """Apply every waiting command; 'release' when the server asks a paused run to
        give its place away."""
        while self.conn.poll(timeout):
            timeout = 0.0
            try:
                raw = json.loads(self.conn.recv_bytes())
            except (EOFError, OSError):  # closed; reset when our reports lay unread
                raise ServerGone from None
            if raw.get("kind") == "release":
                return "release" if run.status == PAUSED else None
            before = run.status
            run.apply(Command(**raw))
            if raw["kind"] == "skip":
                for name, spec in run.specs().items():
                    self.writer.arm(name, spec=spec)
                if run.status == PAUSED:  # Explain and a resume read the paused checkpoint
                    self.checkpoint(run)
            if run.status != before:
                self.status_changed(run)
        return None

    def landed(self, run: Run, status: str, spec_changes: int) -> None:
        """Store what a command scheduled for this step (`Command.at_step`) changed."""
        if run.spec_changes != spec_changes:
            for name, spec in run.specs().items():
                self.writer.arm(name, spec=spec)
        if run.status != status and not run.ended:  # a stop is stored by `end`
            self.status_changed(run)

    def reschedule(self, run: Run) -> None:
        """Commands for a later step that the server sent to an earlier worker of this
        run (before a release or a kill): they wait in the Run again. Those for the
        checkpoint's step or before were applied before it was written (a Run applies
        them at the end of their step)."""
        for raw in self.job.get("scheduled") or ():
            if raw.get("at_step") is not None and raw["at_step"] > run.step_count:
                run.apply(Command(**raw))

    def status_changed(self, run: Run) -> None:
        if run.status == PAUSED:  # weights stand still: a copy for Explain, a resume point
            self.checkpoint(run)
        if run.status in ACTIVE:
            self.store.update_run(self.id, status=run.status)
        self.report(force=True)

    def paused(self, run: Run) -> bool:
        """Wait for commands while paused; True when released."""
        while run.status == PAUSED:
            if self.commands(run, timeout=REPORT_EVERY_S) == "release":
                self.checkpoint(run)  # an lr changed while paused goes into the resume point
                self.send(kind="released")
                return True
            self.report()
        return False

    def checkpoint(self, run: Run) -> None:
        checkpoint_run(run, self.writer)
        self.writer.flush()
        self.last_checkpoint = run.step_count

    def orphaned(self) -> None:
        """The server died (kill -9, a crash, a restart): keep every step taken so far,
        with a checkpoint to resume from, and leave the run interrupted, not failed; the
        next server lists it with Resume. Nobody is left to command this worker."""
        if self.run is None:  # it died while the run was being built: nothing to resume
            self.writer.close()
            self.store.finish(self.id, "failed", "the server stopped before the run began")
            return
        if not self.run.ended:
            self.checkpoint(self.run)
        self.writer.close()
        step = self.store.mark_interrupted(self.id)
        self.store.update_run(
            self.id,
            message=say(
                INTERRUPTED_AT, step=step, reason=say("the server stopped while it trained")
            ),
            ended=time.time(),
        )

    def end(self, run: Run) -> None:
        if run.ended:
            self.checkpoint(run)
        self.writer.close()
        if run.ended:
            results = {"classes": list(run.classes), "step": run.step_count}
            self.store.finish(self.id, run.status, run.message, results)
            self.store.update_run(self.id, total_steps=run.total_steps)
        self.report(force=True)
        self.send(kind="ended", status=run.status if run.ended else PAUSED)


def lower_priority() -> int:
    """Raise this process's niceness by $RESNET_EXPLORER_WORKER_NICE (default 10, 0: not
    at all); returns the niceness now. Where that is refused, the worker runs as it is."""
    text = os.environ.get(NICE_ENV, "").strip()
    step = int(text) if text.isdigit() else WORKER_NICE
    try:
        return os.nice(min(step, 19))
    except OSError:
        return os.nice(0)


def main(job_json: str, conn, flag) -> None:
    """The worker process's entry point (spawned: a fresh interpreter)."""
    job = json.loads(job_json)
    lower_priority()
    torch.set_num_threads(job.get("threads", 1))
    Worker(job, conn, flag).main()


__all__ = ["FINISHED", "data_from_bytes", "data_to_bytes", "main", "memory_cap"]
