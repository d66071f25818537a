"""The local training backend: a bounded worker pool, a FIFO queue, owners, commands.

It implements `core.jobs_api.JobManager`. Each job's training is a synchronous
`core.run.Run` that one worker thread drives; workers never touch the UI, an exception
ends its own run only, and an ended run keeps its logs and final weights, nothing more.
"""

from __future__ import annotations

import itertools
import logging
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
from core.jobs_api import JobError as JobError
from core.jobs_api import JobInfo as JobInfo
from core.jobs_api import JobManager as JobManager
from core.jobs_api import (
    check_arms,
    check_command,
    check_room,
    release_message,
    running_refusal,
)
from core.run import (  # statuses, Arm and Command: pages import them from here
    ACTIVE,
    CANCELLED,
    FAILED,
    PAUSED,
    QUEUED,
    RUNNING,
    Arm,
    Command,
    Run,
    Weights,
    failure_message,
)
from core.run import DIVERGED as DIVERGED
from core.run import FINISHED as FINISHED
from core.run import STOPPED as STOPPED
from core.spec import NetSpec
from core.telemetry import RunLog

log = logging.getLogger("resnet_explorer.jobs")
RECHECK_S = 1.0  # a paused worker past its release time looks for waiting runs this often


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
    urgent: threading.Event = field(default_factory=threading.Event)  # a stop or pause waits
    ended: threading.Event = field(default_factory=threading.Event)  # over, thread gone
    run: Run | None = None  # from its start until it ends
    paused_since: float | None = None
    # What an ended run keeps: its final weights on the CPU and the numbers the page shows.
    weights: dict[str, Weights] = field(default_factory=dict)
    torch_device: torch.device | None = None
    device: str = ""
    classes: tuple[str, ...] = ()
    step: int = 0
    total_steps: int = 0
    skips: dict[str, dict[int, bool]] = field(default_factory=dict)


class LocalJobManager(JobManager):
    """Runs jobs on threads in this process.

    Args:
        max_running: jobs training at once; the rest wait in a FIFO queue.
        max_per_owner: queued + running jobs one owner may have.
        max_queue: queued jobs in all; beyond it, submit refuses.
        threads_per_job: torch intra-op threads per worker; default: cores / max_running,
            so concurrent runs do not oversubscribe the CPU.
        pause_release_s: a run paused this long gives its training place to a waiting run;
            resumed, it waits for the next free place.
    """

    def __init__(
        self,
        max_running: int = 1,
        max_per_owner: int = 3,
        max_queue: int = 50,
        threads_per_job: int | None = None,
        pause_release_s: float = 180.0,
    ):
        self.max_running = max_running
        self.max_per_owner = max_per_owner
        self.max_queue = max_queue
        self.threads_per_job = threads_per_job or max(1, (os.cpu_count() or 1) // max_running)
        self.pause_release_s = pause_release_s
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._queue: list[Job] = []
        self._running: dict[str, threading.Thread] = {}
        self._ids = itertools.count(1)

    # -- the interface ------------------------------------------------------------------

    def submit(self, owner: str, name: str, arms, data, config: TrainConfig) -> str:
        arms = check_arms(arms, config)
        config.validate(len(data.y_train) if isinstance(data, TensorData) else None)
        with self._lock:
            mine = [j for j in self._jobs.values() if j.owner == owner and j.status in ACTIVE]
            check_room(len(mine), self.max_per_owner, len(self._queue), self.max_queue)
            job_id = f"run-{next(self._ids)}"
            job = Job(job_id, owner, name, arms, data, config)
            self._jobs[job_id] = job
            self._queue.append(job)
            self._start_next()
        return job_id

    def info(self, job_id: str, owner: str) -> JobInfo:
        with self._lock:
            return self._info(self._get(job_id, owner))

    def list(self, owner: str) -> list[JobInfo]:
        with self._lock:
            return [self._info(j) for j in self._jobs.values() if j.owner == owner]

    def logs(self, job_id: str, owner: str) -> dict[str, RunLog]:
        with self._lock:
            return dict(self._get(job_id, owner).logs)

    def send(self, job_id: str, owner: str, command: Command) -> None:
        """Deliver a command; a stop or pause lands within a fraction of a step."""
        with self._lock:
            job = self._get(job_id, owner)
            check_command(job.name, job.status, command, [a.name for a in job.arms])
            if self._released(job):  # no thread drives it: apply here, under the lock
                self._apply_released(job, command)
                return
            job.commands.put(command)
            if command.kind in ("stop", "pause"):
                job.urgent.set()  # after the put: the worker clears it, then drains

    def cancel(self, job_id: str, owner: str) -> None:
        """Remove a queued job, or stop a running or paused one within a fraction of a step."""
        with self._lock:
            job = self._get(job_id, owner)
            if job.status == QUEUED and job.run is None:
                self._queue.remove(job)
                job.status, job.message = CANCELLED, "cancelled before it started"
                job.ended.set()
            elif job.status == QUEUED or self._released(job):  # paused, not training
                if job in self._queue:
                    self._queue.remove(job)
                job.run.apply(Command("stop"))
                self._keep_results(job, job.run)
                job.ended.set()
            elif job.status in (RUNNING, PAUSED):
                job.commands.put(Command("stop"))
                job.urgent.set()

    def delete(self, job_id: str, owner: str) -> None:
        with self._lock:
            job = self._get(job_id, owner)
            if job.status in ACTIVE:
                raise JobError(f"{job.name} is still {job.status}; stop it before deleting it")
            del self._jobs[job_id]

    def copy_model(self, job_id: str, owner: str, arm: str) -> tuple[nn.Module, TensorData]:
        with self._lock:  # a paused worker cannot take a step while we hold the lock
            job = self._get(job_id, owner)
            if job.status in (QUEUED, RUNNING):
                raise running_refusal(job.name, job.status)
            run = job.run
            if arm not in (run.trainers if run is not None else job.weights):
                raise JobError(f"{job.name} has no trained network {arm!r}")
            if run is not None:
                weights, device, data = run.weights(arm), run.torch_device, run.trainers[arm].data
            else:
                weights, device, data = job.weights[arm], job.torch_device, job.data
        if callable(data):  # an ended run keeps its loader, not the data: load it again
            data = data()
        return weights.build(device), data

    # -- for tests and shutdown -----------------------------------------------------------

    def wait(self, job_id: str, timeout: float = 60.0) -> str:
        """Block until the job has ended and its thread is gone (or `timeout`); its status."""
        with self._lock:
            job = self._jobs[job_id]
        job.ended.wait(timeout)
        return job.status

    def running_threads(self) -> int:
        with self._lock:
            return len(self._running)

    # -- internals ------------------------------------------------------------------------

    def _get(self, job_id: str, owner: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None or job.owner != owner:  # another owner's job does not exist for you
            raise JobError(f"there is no run {job_id!r} in this session")
        return job

    def _released(self, job: Job) -> bool:
        """Paused, and its thread gave the training place away. Caller holds the lock."""
        return job.run is not None and job.status == PAUSED and job.id not in self._running

    def _info(self, job: Job) -> JobInfo:
        run = job.run
        training = run is not None and job.status == RUNNING
        return JobInfo(
            id=job.id,
            owner=job.owner,
            name=job.name,
            status=job.status,
            message=job.message,
            arms=tuple(a.name for a in job.arms),
            step=run.step_count if run is not None else job.step,
            total_steps=run.total_steps if run is not None else job.total_steps,
            eta_seconds=run.eta_seconds if training else None,
            images_per_s=run.rate if training else 0.0,
            queue_position=self._queue.index(job) + 1 if job in self._queue else None,
            device=job.device,
            created=job.created,
            config=job.config,
            skips=run.skips() if run is not None else job.skips,
            specs=run.specs() if run is not None else _specs(job),
            classes=job.classes,
        )

    def _start_next(self) -> None:
        """Start queued jobs while there is room. Caller holds the lock."""
        while self._queue and len(self._running) < self.max_running:
            job = self._queue.pop(0)
            job.status, job.message = RUNNING, ""
            thread = threading.Thread(target=self._work, args=(job,), name=job.id, daemon=True)
            self._running[job.id] = thread
            thread.start()

    def _work(self, job: Job) -> None:
        """A worker thread: start (or continue) the job's run and drive it."""
        torch.set_num_threads(self.threads_per_job)  # this worker's intra-op threads
        try:
            if job.run is None:
                data = job.data() if callable(job.data) else job.data
                run = Run(job.arms, data, job.config, interrupt=job.urgent.is_set)
                del data
                with self._lock:
                    job.run, job.logs = run, run.logs
                    job.device, job.torch_device = run.device, run.torch_device
                    job.classes = run.classes
            self._drive(job, job.run)
        except Exception as e:  # one run's failure must not touch the others
            self._fail(job, e)
        finally:
            ended = job.run is not None and job.run.ended
            weights = {a: job.run.weights(a) for a in job.run.trainers} if ended else None
            with self._lock:
                if ended:
                    self._keep_results(job, job.run, weights)
                elif job.status in ACTIVE and job.run is None:  # ended without saying how
                    job.status = FAILED
                if self._running.get(job.id) is threading.current_thread():
                    del self._running[job.id]  # (a released run's place is already free)
                if job.status not in ACTIVE:
                    job.ended.set()
                self._start_next()

    def _drive(self, job: Job, run: Run) -> None:
        """Train until the run ends, or until it has been paused so long that it gives
        its place to a waiting run (it keeps its state and continues later)."""
        while not run.ended:
            job.urgent.clear()  # then take every waiting command
            while True:
                try:
                    run.apply(job.commands.get_nowait())
                except queue.Empty:
                    break
            self._sync(job, run)  # a copy_model holding the lock keeps this step waiting
            if run.status == PAUSED:
                if self._wait_paused(job, run):
                    return
                continue
            run.step()
        self._sync(job, run)

    def _sync(self, job: Job, run: Run) -> None:
        with self._lock:
            if run.status != PAUSED:
                job.paused_since = None
            elif job.paused_since is None:
                job.paused_since = time.monotonic()
            job.status = run.status
            if run.message:
                job.message = run.message

    def _wait_paused(self, job: Job, run: Run) -> bool:
        """Block while paused, applying commands as they come. True: the place was given
        to a waiting run after `pause_release_s`; the thread then ends."""
        while run.status == PAUSED:
            left = job.paused_since + self.pause_release_s - time.monotonic()
            if left <= 0:
                with self._lock:
                    if self._queue:
                        self._release(job)
                        return True
            try:
                command = job.commands.get(timeout=left if left > 0 else RECHECK_S)
            except queue.Empty:
                continue
            run.apply(command)
            self._sync(job, run)
        return False

    def _release(self, job: Job) -> None:
        """Give a paused run's place to a waiting run. Caller holds the lock."""
        job.message = release_message(self.pause_release_s)
        del self._running[job.id]  # from here on, commands are applied by `send`
        waiting = [job.commands.get_nowait() for _ in range(job.commands.qsize())]
        for command in waiting:  # sent while the worker was deciding
            if self._released(job):
                self._apply_released(job, command)
        self._start_next()

    def _apply_released(self, job: Job, command: Command) -> None:
        """A command to a paused run that gave its place away. Caller holds the lock."""
        run = job.run
        if command.kind == "resume":  # first in the queue: it had its place before
            job.commands.put(command)
            job.status, job.paused_since = QUEUED, None
            job.message = "resumed: it continues as soon as a training place is free"
            self._queue.insert(0, job)
            self._start_next()
            return
        run.apply(command)
        if run.ended:  # stopped
            self._keep_results(job, run)
            job.ended.set()

    def _keep_results(self, job: Job, run: Run, weights: dict[str, Weights] | None = None):
        """Keep what an ended run's pages need (logs, CPU weights, numbers), drop the rest:
        nets, optimizers, the data's device copy. Caller holds the lock."""
        job.weights = weights or {a: run.weights(a) for a in run.trainers}
        job.step, job.total_steps, job.skips = run.step_count, run.total_steps, run.skips()
        job.status, job.message = run.status, run.message
        job.run = None

    def _fail(self, job: Job, error: Exception) -> None:
        run = job.run
        step = run.step_count + 1 if run is not None else None
        log.error("run %s (%s) failed (step %s)", job.id, job.name, step or "-", exc_info=error)
        message = failure_message(error, step)
        if run is not None:
            run.fail(message)
        else:
            with self._lock:
                job.status, job.message = FAILED, message


def _specs(job: Job) -> dict[str, NetSpec]:
    """Each arm's spec: as it ended (skips as they were), or as submitted."""
    return {a.name: job.weights[a.name].spec if a.name in job.weights else a.spec for a in job.arms}
