"""What the pages may ask of a training backend: the `JobManager` interface, the `JobInfo`
it answers with, and the `JobError` it refuses with.

The local backend (`core.jobs.LocalJobManager`) implements it with threads; a cluster
backend (Ray) can implement it later without a page changing. No torch work here.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import torch
from torch import nn

from core.config import TrainConfig
from core.data import TensorData
from core.errors import ExplainedError
from core.plan import check_memory, make_plan
from core.run import ACTIVE, COMMANDS, Command
from core.spec import NetSpec
from core.telemetry import RunLog
from core.words import N_, say


class JobError(ExplainedError):
    """A request the job manager refuses; the message says why and what to do."""


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
    eta_seconds: float | None  # None unless training
    images_per_s: float  # all arms together; 0 unless training
    queue_position: int | None  # 1 = next to start; None when not queued
    device: str
    created: float
    config: TrainConfig
    skips: dict[str, dict[int, bool]] = field(default_factory=dict)  # arm -> block -> on
    # Each arm's spec as it is now (live skip toggles applied); the submitted spec while
    # the run waits. Cheap to read: pages learn shapes and block kinds from it, no copy.
    specs: dict[str, NetSpec] = field(default_factory=dict)
    classes: tuple[str, ...] = ()  # the class names of the run's dataset, once loaded
    not_saved: str = ""  # why the run's worker cannot write to the store now ("" = saving)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def progress(self) -> float:
        return self.step / self.total_steps if self.total_steps else 0.0


def check_arms(arms, config: TrainConfig | None = None) -> tuple:
    """The arms of a new run, checked: at least one, names distinct, specs valid, and
    (given the run's settings) their training memory within the caps and the device."""
    arms = tuple(arms)
    if not arms:
        raise JobError(N_("a run needs at least one network"))
    if len({a.name for a in arms}) != len(arms):
        raise JobError(N_("the networks of one run need different names"))
    for arm in arms:
        arm.spec.validate()
    if config is not None:
        check_device_memory(arms, config.batch_size, free_device_bytes(config.device))
    return arms


def free_device_bytes(device: str) -> int | None:
    """Free memory of the CUDA device a run would train on; None elsewhere (a CPU's
    memory is the worker's cap, and only the plan's caps apply at submit)."""
    if device in ("auto", "cuda") and torch.cuda.is_available():
        return torch.cuda.mem_get_info()[0]
    return None


def on_gpu(device: str) -> bool:
    """Whether a run with this `TrainConfig.device` trains on a CUDA GPU."""
    return device in ("auto", "cuda") and torch.cuda.is_available()


def free_gpu_bytes() -> int | None:
    """The CUDA device's free memory now; None without one (the scheduler's question)."""
    return torch.cuda.mem_get_info()[0] if torch.cuda.is_available() else None


def training_bytes(arms, batch_size: int) -> int:
    """What the networks of a run need for training together, by the plan's estimate
    (activations for a batch, weights, gradients, optimizer state): the scheduler admits
    GPU runs by it."""
    return sum(check_memory(make_plan(a.spec), batch_size) for a in arms)


def check_device_memory(arms, batch_size: int, free: int | None) -> int:
    """At submit: each network's training memory within the caps and the free memory, and
    all of a run's networks (resident at once, trained in turn) together too. Returns the
    bytes they need."""
    needed = sum(check_memory(make_plan(a.spec), batch_size, free) for a in arms)
    if free is not None and needed > free:
        raise JobError(
            f"the {len(arms)} networks of this run need {needed / 2**30:.1f} GiB together for "
            f"training, {needed / free:.1f}x the {free / 2**30:.1f} GiB free on the GPU now; "
            "use a smaller batch size, or race fewer networks at once"
        )
    return needed


def check_room(active: int, max_per_owner: int, waiting: int, max_queue: int) -> None:
    """Refuse a new run when its owner has `max_per_owner` waiting or running already, or
    the queue holds `max_queue` runs."""
    if active >= max_per_owner:
        raise JobError(
            say(
                "you already have {active} runs waiting or running (the limit is {limit}); "
                "stop one or wait for it to finish",
                active=active,
                limit=max_per_owner,
            )
        )
    if waiting >= max_queue:
        raise JobError(
            say(
                "the server's queue is full ({waiting} runs waiting); try again in a few minutes",
                waiting=waiting,
            )
        )


def check_command(name: str, status: str, command: Command, arms) -> None:
    """Refuse a command to an ended run, an unknown command or an unknown arm."""
    if status not in ACTIVE:
        raise JobError(
            say("{name} has already ended ({status}); start a new run", name=name, status=status)
        )
    if command.kind not in COMMANDS:
        raise JobError(f"there is no command {command.kind!r}; use one of {COMMANDS}")
    if command.arm is not None and command.arm not in arms:
        raise JobError(say("{name} has no network named {arm!r}", name=name, arm=command.arm))
    if command.at_step is not None and command.at_step < 0:
        raise JobError(
            say("a command cannot wait for step {step}; use 0 or more", step=command.at_step)
        )


# Refusals the thread and process backends share.
STILL_ACTIVE = N_("{name} is still {status}; stop it before deleting it")
NO_NETWORK = N_("{name} has no trained network {arm!r}")
NO_RUN = N_("there is no run {id!r} in this session")


def release_message(seconds: float) -> str:
    """What a paused run that gave its training place away says."""
    span = (
        say("{n:g} minutes", n=seconds / 60) if seconds >= 60 else say("{n:g} seconds", n=seconds)
    )
    return say(
        "paused for more than {span}, so it gave its training place to a run that was "
        "waiting; after Resume it continues as soon as a place is free",
        span=span,
    )


def running_refusal(name: str, status: str) -> JobError:
    """copy_model's refusal while the weights still move."""
    return JobError(
        say(
            "{name} is {status}: pause it or let it finish first, so its weights stay still "
            "while they are explained",
            name=name,
            status=status,
        )
    )


class JobManager(abc.ABC):
    """What the UI may ask of a training backend. Every call names the owner (a browser
    session id); a job is invisible to everyone else.

    `submit`'s `client` is the browser's network address (`st.context.ip_address`; None
    when unknown): the per-address caps count it, so new `?me=` tokens do not reset them.
    A command with `at_step` lands when the run has taken that many steps.
    """

    @abc.abstractmethod
    def submit(
        self, owner: str, name: str, arms, data, config: TrainConfig, *, client: str | None = None
    ) -> str: ...

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

    def resume(self, job_id: str, owner: str) -> None:
        """Continue an interrupted run from its last checkpoint (same seed streams, its
        curves go on where they stopped). Backends without a store cannot.

        Raises:
            JobError: the run is not interrupted, or this backend keeps no checkpoints.
        """
        info = self.info(job_id, owner)
        raise JobError(
            say(
                "{name} cannot be resumed: it is {status}, and only a run that was "
                "interrupted by a restart can continue; start a new run instead",
                name=info.name,
                status=info.status,
            )
        )
