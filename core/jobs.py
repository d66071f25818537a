"""The local training backend: a bounded worker pool, a fair queue, owners, commands.

It implements `core.jobs_api.JobManager`. Each job's training is a synchronous
`core.run.Run` that one worker thread drives; workers never touch the UI, an exception
ends its own run only, and an ended run keeps its logs and final weights, nothing more.
Who starts next and how many train at once is `core.scheduler.Scheduler`'s to say.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import queue
import threading
import time

import torch
from torch import nn

from core.config import TrainConfig
from core.data import TensorData
from core.job_record import Job, job_info
from core.jobs_api import (
    NO_NETWORK,
    NO_RUN,
    STILL_ACTIVE,
    check_arms,
    check_command,
    free_gpu_bytes,
    on_gpu,
    release_message,
    running_refusal,
    training_bytes,
)
from core.jobs_api import JobError as JobError
from core.jobs_api import JobInfo as JobInfo
from core.jobs_api import JobManager as JobManager
from core.run import (  # statuses, Arm and Command: pages import them from here
    ACTIVE,
    CANCELLED,
    FAILED,
    PAUSED,
    QUEUED,
    RUNNING,
    Command,
    Run,
    Weights,
    failure_message,
)
from core.run import DIVERGED as DIVERGED
from core.run import FINISHED as FINISHED
from core.run import STOPPED as STOPPED
from core.run import Arm as Arm
from core.scheduler import Scheduler
from core.scheduling import Policy
from core.telemetry import RunLog
from core.words import say

log = logging.getLogger("resnet_explorer.jobs")
RECHECK_S = 1.0  # a paused worker past its release time looks for waiting runs this often
QUOTA_EVERY_S = 1.0  # a training worker looks at its owner's training time this often


class LocalJobManager(JobManager):
    """Runs jobs on threads in this process.

    Args:
        max_running: jobs training on the CPU at once (GPU jobs: while their memory
            fits, see core.scheduling); the rest wait in a fair queue.
        max_per_owner: queued + running jobs one owner may have.
        max_queue: queued jobs in all; beyond it, submit refuses.
        policy: the other limits (per address, steps, training time); default: none.
            Its CPU places, per-owner and queue caps are the arguments above.
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
        policy: Policy | None = None,
    ):
        self.max_running = max_running
        self.max_per_owner = max_per_owner
        self.max_queue = max_queue
        self.threads_per_job = threads_per_job or max(1, (os.cpu_count() or 1) // max_running)
        self.pause_release_s = pause_release_s
        self.policy = dataclasses.replace(
            policy or Policy(),
            max_cpu_runs=max_running,
            max_per_owner=max_per_owner,
            max_queue=max_queue,
        )
        self.scheduler = Scheduler(self.policy, free_gpu_bytes)
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._queue: list[Job] = []
        self._running: dict[str, threading.Thread] = {}
        self._ids = itertools.count(1)

    # -- the interface ------------------------------------------------------------------

    def submit(
        self, owner: str, name: str, arms, data, config: TrainConfig, *, client: str | None = None
    ) -> str:
        arms = check_arms(arms, config)
        n = len(data.y_train) if isinstance(data, TensorData) else None
        config.validate(n)
        memory, gpu = training_bytes(arms, config.batch_size), on_gpu(config.device)
        with self._lock:
            mine = [j for j in self._jobs.values() if j.owner == owner and j.status in ACTIVE]
            self.scheduler.check(
                owner,
                client,
                owner_active=len(mine),
                waiting=len(self._queue),
                steps=config.total_steps(n) if n else None,
                memory=memory,
                gpu=gpu,
                running=list(self._running),
            )
            job_id = f"run-{next(self._ids)}"
            job = Job(job_id, owner, name, arms, data, config, client)
            self._jobs[job_id] = job
            self.scheduler.add(job_id, owner, client, memory, gpu)
            self._queue.append(job)
            self._start_next()
        return job_id

    def info(self, job_id: str, owner: str) -> JobInfo:
        with self._lock:
            return self._info(self._get(job_id, owner))

    def list(self, owner: str) -> list[JobInfo]:
        with self._lock:
            places = self._positions()
            return [job_info(j, places.get(j.id)) for j in self._jobs.values() if j.owner == owner]

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
            if command.kind in ("stop", "pause") and command.at_step is None:
                job.urgent.set()  # after the put: the worker clears it, then drains

    def cancel(self, job_id: str, owner: str) -> None:
        """Remove a queued job, or stop a running or paused one within a fraction of a step."""
        with self._lock:
            job = self._get(job_id, owner)
            if job.status == QUEUED and job.run is None:
                self._queue.remove(job)
                job.status, job.message = CANCELLED, say("cancelled before it started")
                self._ended(job)
            elif job.status == QUEUED or self._released(job):  # paused, not training
                if job in self._queue:
                    self._queue.remove(job)
                job.run.apply(Command("stop"))
                self._keep_results(job, job.run)
                self._ended(job)
            elif job.status in (RUNNING, PAUSED):
                job.commands.put(Command("stop"))
                job.urgent.set()

    def delete(self, job_id: str, owner: str) -> None:
        with self._lock:
            job = self._get(job_id, owner)
            if job.status in ACTIVE:
                raise JobError(say(STILL_ACTIVE, name=job.name, status=job.status))
            del self._jobs[job_id]

    def copy_model(self, job_id: str, owner: str, arm: str) -> tuple[nn.Module, TensorData]:
        with self._lock:  # a paused worker cannot take a step while we hold the lock
            job = self._get(job_id, owner)
            if job.status in (QUEUED, RUNNING):
                raise running_refusal(job.name, job.status)
            run = job.run
            if arm not in (run.trainers if run is not None else job.weights):
                raise JobError(say(NO_NETWORK, name=job.name, arm=arm))
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
            raise JobError(say(NO_RUN, id=job_id))
        return job

    def _released(self, job: Job) -> bool:
        """Paused, and its thread gave the training place away. Caller holds the lock."""
        return job.run is not None and job.status == PAUSED and job.id not in self._running

    def _info(self, job: Job) -> JobInfo:
        return job_info(job, self._positions().get(job.id))

    def _positions(self) -> dict[str, int]:
        """Queue positions in the order runs will start. Caller holds the lock."""
        if not self._queue:
            return {}
        return self.scheduler.positions([j.id for j in self._queue], list(self._running))

    def _start_next(self) -> None:
        """Start the queued jobs the scheduler lets in, in its order. Caller holds the lock."""
        if not self._queue:
            return
        waiting = {j.id: j for j in self._queue}
        for job_id in self.scheduler.starts(list(waiting), list(self._running)):
            job = waiting[job_id]
            self._queue.remove(job)
            job.status, job.message = RUNNING, ""
            thread = threading.Thread(target=self._work, args=(job,), name=job.id, daemon=True)
            self._running[job.id] = thread
            self.scheduler.started(job.id)
            thread.start()

    def _ended(self, job: Job) -> None:
        """The job is over: its place and its counts are free. Caller holds the lock."""
        self.scheduler.leave(job.id)
        job.ended.set()

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
                    self._ended(job)
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
            self._check_time(job, run)
            if run.status == PAUSED:
                if self._wait_paused(job, run):
                    return
                continue
            run.step()
        self._sync(job, run)

    def _check_time(self, job: Job, run: Run) -> None:
        """Stop the run when its owner's training time is used up (looked at once a
        second: the quota counts minutes)."""
        now = time.monotonic()
        if now - job.time_checked < QUOTA_EVERY_S:
            return
        job.time_checked = now
        with self._lock:
            why = self.scheduler.out_of_time(job.id)
        if why is not None and not run.ended:
            run.apply(Command("stop"))
            run.message = say("{why} at step {step}", why=why, step=run.step_count)
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
        self.scheduler.released(job.id)
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
            job.message = say("resumed: it continues as soon as a training place is free")
            ticket = self.scheduler.tickets[job.id]
            self.scheduler.add(job.id, job.owner, job.client, ticket.memory, ticket.gpu, True)
            self._queue.append(job)
            self._start_next()
            return
        run.apply(command)
        if run.ended:  # stopped
            self._keep_results(job, run)
            self._ended(job)

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
