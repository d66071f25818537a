"""The local backend's record of one job (`Job`) and the page's view of it (`job_info`):
what a worker thread drives and what an ended run keeps. No threads start here.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from core.config import TrainConfig
from core.data import TensorData
from core.jobs_api import JobInfo
from core.run import QUEUED, RUNNING, Arm, Run, Weights
from core.spec import NetSpec
from core.telemetry import RunLog


@dataclass(eq=False)
class Job:
    id: str
    owner: str
    name: str
    arms: tuple[Arm, ...]
    data: Callable[[], TensorData] | TensorData
    config: TrainConfig
    client: str | None = None  # the browser's address, for the caps per address
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
    time_checked: float = 0.0  # when its owner's training time was last looked at


def job_info(job: Job, position: int | None) -> JobInfo:
    """The page's view of a job: the live run's numbers while it has one, else what it kept."""
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
        queue_position=position,
        device=job.device,
        created=job.created,
        config=job.config,
        skips=run.skips() if run is not None else job.skips,
        specs=run.specs() if run is not None else _specs(job),
        classes=job.classes,
    )


def _specs(job: Job) -> dict[str, NetSpec]:
    """Each arm's spec: as it ended (skips as they were), or as submitted."""
    return {a.name: job.weights[a.name].spec if a.name in job.weights else a.spec for a in job.arms}
