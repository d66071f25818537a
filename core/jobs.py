"""Background training jobs: a bounded worker pool, a FIFO queue, commands, ownership.

`JobManager` is the seam: the UI talks only to its methods, so a cluster backend (Ray)
can replace `LocalJobManager` later. Worker threads never touch the UI; an exception
ends its own run only; a worker thread lives exactly as long as its run.
"""

from __future__ import annotations

import abc
import copy
import itertools
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from core.config import TrainConfig
from core.data import TensorData
from core.model import build
from core.spec import NetSpec
from core.telemetry import Event, RunLog
from core.training import DivergedError, Trainer, describe_device

QUEUED, RUNNING, PAUSED = "queued", "running", "paused"
FINISHED, STOPPED, FAILED, DIVERGED, CANCELLED = (
    "finished",
    "stopped",
    "failed",
    "diverged",
    "cancelled",
)
ACTIVE = (QUEUED, RUNNING, PAUSED)


class JobError(ValueError):
    """A request the job manager refuses; the message says why and what to do."""


@dataclass(frozen=True)
class Arm:
    """One network of a run: a twin run has two arms (plain and residual), same seed."""

    name: str
    spec: NetSpec


@dataclass(frozen=True)
class Command:
    kind: str  # pause, resume, stop, skip, lr
    block: int | None = None  # skip: which block (None: all)
    on: bool = True  # skip: on or off
    value: float = 0.0  # lr: the new learning rate
    arm: str | None = None  # skip/lr: which arm (None: all)


@dataclass(frozen=True)
class JobInfo:
    """An immutable view of a job, for the page."""

    id: str
    owner: str
    name: str
    status: str
    message: str
    arms: tuple[str, ...]
    step: int
    total_steps: int
    eta_seconds: float | None
    images_per_s: float
    queue_position: int | None  # 1 = next to start; None when not queued
    device: str
    created: float
    config: TrainConfig
    skips: dict[str, dict[int, bool]] = field(default_factory=dict)  # arm -> block -> on
    # Each arm's spec as it is now (live skip toggles applied); the submitted spec while
    # the run waits. Cheap to read: pages learn shapes and block kinds from it, no copy.
    specs: dict[str, NetSpec] = field(default_factory=dict)
    classes: tuple[str, ...] = ()  # the class names of the run's dataset, once loaded

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def progress(self) -> float:
        return self.step / self.total_steps if self.total_steps else 0.0


@dataclass(eq=False)
class Job:
    id: str
    owner: str
    name: str
    arms: tuple[Arm, ...]
    data: Callable[[], TensorData] | TensorData
    config: TrainConfig
    created: float = field(default_factory=time.time)
    status: str = QUEUED
    message: str = ""
    logs: dict[str, RunLog] = field(default_factory=dict)
    commands: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    trainers: dict[str, Trainer] = field(default_factory=dict)
    device: str = ""


class JobManager(abc.ABC):
    """What the UI may ask of a training backend. Every call names the owner (a browser
    session id); a job is invisible to everyone else."""

    @abc.abstractmethod
    def submit(self, owner: str, name: str, arms, data, config: TrainConfig) -> str: ...

    @abc.abstractmethod
    def info(self, job_id: str, owner: str) -> JobInfo: ...

    @abc.abstractmethod
    def list(self, owner: str) -> list[JobInfo]: ...

    @abc.abstractmethod
    def logs(self, job_id: str, owner: str) -> dict[str, RunLog]: ...

    @abc.abstractmethod
    def send(self, job_id: str, owner: str, command: Command) -> None: ...

    @abc.abstractmethod
    def cancel(self, job_id: str, owner: str) -> None: ...

    @abc.abstractmethod
    def delete(self, job_id: str, owner: str) -> None: ...

    @abc.abstractmethod
    def copy_model(self, job_id: str, owner: str, arm: str) -> tuple[nn.Module, TensorData]:
        """A copy of one arm's network (eval mode) and the data it trained on, taken while
        no optimizer step can run: the run must be paused or have ended."""


class LocalJobManager(JobManager):
    """Runs jobs on threads in this process.

    Args:
        max_running: jobs training at once; the rest wait in a FIFO queue.
        max_per_owner: queued + running jobs one owner may have.
        max_queue: queued jobs in all; beyond it, submit refuses.
        threads_per_job: torch intra-op threads per worker; default: cores / max_running,
            so concurrent runs do not oversubscribe the CPU.
    """

    def __init__(
        self,
        max_running: int = 1,
        max_per_owner: int = 3,
        max_queue: int = 50,
        threads_per_job: int | None = None,
    ):
        self.max_running = max_running
        self.max_per_owner = max_per_owner
        self.max_queue = max_queue
        self.threads_per_job = threads_per_job or max(1, (os.cpu_count() or 1) // max_running)
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._queue: list[Job] = []
        self._running: dict[str, threading.Thread] = {}
        self._ids = itertools.count(1)

    # -- the interface ------------------------------------------------------------------

    def submit(self, owner: str, name: str, arms, data, config: TrainConfig) -> str:
        arms = tuple(arms)
        if not arms:
            raise JobError("a run needs at least one network")
        if len({a.name for a in arms}) != len(arms):
            raise JobError("the networks of one run need different names")
        config.validate()
        for arm in arms:
            arm.spec.validate()
        with self._lock:
            mine = [j for j in self._jobs.values() if j.owner == owner and j.status in ACTIVE]
            if len(mine) >= self.max_per_owner:
                raise JobError(
                    f"you already have {len(mine)} runs waiting or running (the limit is "
                    f"{self.max_per_owner}); stop one or wait for it to finish"
                )
            if len(self._queue) >= self.max_queue:
                raise JobError(
                    f"the server's queue is full ({len(self._queue)} runs waiting); "
                    "try again in a few minutes"
                )
            job_id = f"run-{next(self._ids)}"
            job = Job(job_id, owner, name, arms, data, config)
            self._jobs[job_id] = job
            self._queue.append(job)
            self._start_next()
        return job_id

    def info(self, job_id: str, owner: str) -> JobInfo:
        with self._lock:
            job = self._get(job_id, owner)
            return self._info(job)

    def list(self, owner: str) -> list[JobInfo]:
        with self._lock:
            return [self._info(j) for j in self._jobs.values() if j.owner == owner]

    def logs(self, job_id: str, owner: str) -> dict[str, RunLog]:
        with self._lock:
            return dict(self._get(job_id, owner).logs)

    def send(self, job_id: str, owner: str, command: Command) -> None:
        with self._lock:
            job = self._get(job_id, owner)
            if job.status not in ACTIVE:
                raise JobError(f"{job.name} has already ended ({job.status}); start a new run")
            job.commands.put(command)

    def cancel(self, job_id: str, owner: str) -> None:
        """Remove a queued job, or stop a running one at its next step."""
        with self._lock:
            job = self._get(job_id, owner)
            if job.status == QUEUED:
                self._queue.remove(job)
                job.status, job.message = CANCELLED, "cancelled before it started"
            elif job.status in (RUNNING, PAUSED):
                job.commands.put(Command("stop"))

    def delete(self, job_id: str, owner: str) -> None:
        with self._lock:
            job = self._get(job_id, owner)
            if job.status in ACTIVE:
                raise JobError(f"{job.name} is still {job.status}; stop it before deleting it")
            del self._jobs[job_id]

    def copy_model(self, job_id: str, owner: str, arm: str) -> tuple[nn.Module, TensorData]:
        with self._lock:  # a paused worker cannot resume while we hold the lock
            job = self._get(job_id, owner)
            if job.status in (QUEUED, RUNNING):
                raise JobError(
                    f"{job.name} is {job.status}: pause it or let it finish first, so its "
                    "weights stay still while they are explained"
                )
            trainer = job.trainers.get(arm)
            if trainer is None:
                raise JobError(f"{job.name} has no trained network {arm!r}")
            return copy.deepcopy(trainer.net).eval(), trainer.data

    # -- for tests and shutdown -----------------------------------------------------------

    def wait(self, job_id: str, timeout: float = 60.0) -> str:
        """Block until the job has ended (or `timeout`); returns its status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                job = self._jobs[job_id]
                thread = self._running.get(job_id)
                if job.status not in ACTIVE and thread is None:
                    return job.status
            if thread is not None:
                thread.join(timeout=min(0.5, max(deadline - time.monotonic(), 0)))
            else:
                time.sleep(0.01)
        return self._jobs[job_id].status

    def running_threads(self) -> int:
        with self._lock:
            return len(self._running)

    # -- internals ------------------------------------------------------------------------

    def _get(self, job_id: str, owner: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None or job.owner != owner:  # another owner's job does not exist for you
            raise JobError(f"there is no run {job_id!r} in this session")
        return job

    def _info(self, job: Job) -> JobInfo:
        trainers = list(job.trainers.values())
        step = min((t.step_count for t in trainers), default=0)
        total = max((t.total_steps for t in trainers), default=0)
        etas = [t.eta_seconds for t in trainers if t.eta_seconds is not None]
        rates = [t.images_per_s for t in trainers if t.images_per_s > 0]
        position = self._queue.index(job) + 1 if job in self._queue else None
        return JobInfo(
            id=job.id,
            owner=job.owner,
            name=job.name,
            status=job.status,
            message=job.message,
            arms=tuple(a.name for a in job.arms),
            step=step,
            total_steps=total,
            eta_seconds=sum(etas) if etas else None,
            images_per_s=sum(rates) / len(rates) if rates else 0.0,
            queue_position=position,
            device=job.device,
            created=job.created,
            config=job.config,
            skips={name: t.net.skips() for name, t in job.trainers.items()},
            specs={
                a.name: job.trainers[a.name].net.current_spec()
                if a.name in job.trainers
                else a.spec
                for a in job.arms
            },
            classes=next((t.data.classes for t in trainers), ()),
        )

    def _start_next(self) -> None:
        """Start queued jobs while there is room. Caller holds the lock."""
        while self._queue and len(self._running) < self.max_running:
            job = self._queue.pop(0)
            job.status = RUNNING
            thread = threading.Thread(target=self._run, args=(job,), name=job.id, daemon=True)
            self._running[job.id] = thread
            thread.start()

    def _run(self, job: Job) -> None:
        torch.set_num_threads(self.threads_per_job)  # this worker's intra-op threads
        try:
            self._train(job)
        except DivergedError as e:
            self._end(job, DIVERGED, str(e))
        except Exception as e:  # one run's failure must not touch the others
            message = f"{type(e).__name__}: {e}" if not isinstance(e, ValueError) else str(e)
            for log in job.logs.values():
                log.append_event(Event(step=_step(job), kind="failed", detail=message))
            self._end(job, FAILED, message)
        finally:
            with self._lock:
                if job.status in ACTIVE:  # ended without saying how: count it as failed
                    job.status = FAILED
                self._running.pop(job.id, None)
                self._start_next()

    def _end(self, job: Job, status: str, message: str) -> None:
        with self._lock:
            job.status, job.message = status, message

    def _train(self, job: Job) -> None:
        data = job.data() if callable(job.data) else job.data
        for arm in job.arms:
            # One seed for every arm: identical weights where the layers match, and the
            # same batch order, so the skip connections are the only difference.
            net = build(arm.spec, seed=job.config.seed)
            trainer = Trainer(net, data, job.config)
            trainer.log.meta.update(arm=arm.name, spec=arm.spec.to_json(indent=None))
            with self._lock:
                job.trainers[arm.name] = trainer
                job.logs[arm.name] = trainer.log
                job.device = describe_device(trainer.device)
        trainers = list(job.trainers.values())
        while True:
            stop = self._apply_commands(job)
            if stop:
                for t in trainers:
                    t.log.append_event(Event(step=t.step_count, kind="stop", detail="stopped"))
                self._end(job, STOPPED, f"stopped at step {_step(job)}")
                return
            if all(t.done for t in trainers):
                for t in trainers:
                    t.log.append_event(Event(step=t.step_count, kind="finished", detail="done"))
                self._end(job, FINISHED, "")
                return
            for t in trainers:  # interleaved: both curves grow together
                if not t.done:
                    t.step()

    def _apply_commands(self, job: Job) -> bool:
        """Apply every waiting command; block while paused. Returns True to stop."""
        while True:
            try:
                cmd = job.commands.get(block=job.status == PAUSED, timeout=0.2)
            except queue.Empty:
                if job.status == PAUSED:
                    continue
                return False
            if cmd.kind == "stop":
                return True
            targets = [t for name, t in job.trainers.items() if cmd.arm in (None, name)]
            pausing = cmd.kind == "pause"
            if cmd.kind in ("pause", "resume") and job.status == (RUNNING if pausing else PAUSED):
                for t in job.trainers.values():  # a run pauses as a whole, every arm at once
                    t.pause_clock() if pausing else t.resume_clock()
                    t.log.append_event(
                        Event(step=t.step_count, kind=cmd.kind, detail=f"{cmd.kind}d")
                    )
                with self._lock:
                    job.status = PAUSED if pausing else RUNNING
            elif cmd.kind in ("skip", "lr"):
                for t in targets:
                    try:
                        t.set_skip(cmd.on, cmd.block) if cmd.kind == "skip" else t.set_lr(cmd.value)
                    except ValueError as e:  # a refused command is logged, the run goes on
                        t.log.append_event(Event(step=t.step_count, kind="rejected", detail=str(e)))


def _step(job: Job) -> int:
    return min((t.step_count for t in job.trainers.values()), default=0)
