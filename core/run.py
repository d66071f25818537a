"""One training run, synchronous: its arms built from one seed, trained in interleaved
rounds by `step()`, with commands applied between steps by `apply()`.

No threads and no locks here: the job manager drives a Run from its worker thread, and a
test drives it step by step, so "a command lands at the right step" is a plain test.
Never imports the UI.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

from core.config import TrainConfig
from core.data import TensorData
from core.errors import ExplainedError
from core.model import Net, build
from core.spec import NetSpec
from core.telemetry import Event, RunLog
from core.training import (
    DivergedError,
    Interrupted,
    Trainer,
    describe_device,
    layer_names,
    pick_device,
)
from core.words import say

QUEUED, RUNNING, PAUSED = "queued", "running", "paused"
FINISHED, STOPPED, FAILED, DIVERGED, CANCELLED = (
    "finished",
    "stopped",
    "failed",
    "diverged",
    "cancelled",
)
ACTIVE = (QUEUED, RUNNING, PAUSED)
# Queued or running when the server (or its worker) died; resumable from its checkpoint.
INTERRUPTED = "interrupted"
COMMANDS = ("pause", "resume", "stop", "skip", "lr")
RATE_WINDOW_S = 1.0  # images/s is measured over at least this much training time


@dataclass(frozen=True, eq=False)
class Init:
    """Weights an arm starts from instead of its seed's (a transfer, `core.transfer`): a
    whole state dict for the arm's spec (CPU tensors) and the parameters that stay frozen
    (not trained, not in the optimizer, so weight decay leaves them alone too)."""

    state: dict[str, torch.Tensor]
    frozen: tuple[str, ...] = ()

    def apply(self, net: Net) -> None:
        """Load the weights into `net` (built from the arm's spec) and freeze."""
        net.load_state_dict(self.state)
        frozen = set(self.frozen)
        for name, p in net.named_parameters():
            p.requires_grad_(name not in frozen)


@dataclass(frozen=True)
class Arm:
    """One network of a run: a twin run has two arms (plain and residual), same seed."""

    name: str
    spec: NetSpec
    init: Init | None = field(default=None, compare=False)  # None: built from the seed


@dataclass(frozen=True)
class Command:
    kind: str  # pause, resume, stop, skip, lr
    block: int | None = None  # skip: which block (None: all)
    on: bool = True  # skip: on or off
    value: float = 0.0  # lr: the new learning rate
    arm: str | None = None  # skip/lr: which arm (None: all)
    # Apply when the run has taken this many steps, before the next step runs (None: now;
    # a step already passed: now). Lesson 8 switches its skips on mid-run with it.
    at_step: int | None = None


@dataclass(frozen=True)
class Weights:
    """One arm's network as data: its spec (skips as they are) and a CPU copy of its
    weights. Enough to rebuild the net, and small next to an optimizer and a dataset."""

    spec: NetSpec
    state: dict[str, torch.Tensor]

    def build(self, device: torch.device | str = "cpu") -> Net:
        """A fresh net with these weights, in eval mode."""
        net = build(self.spec, seed=0)
        net.load_state_dict(self.state)
        return net.to(device).eval()


class Run:
    """The arms of one run, trained in turn, one step each per round.

    Args:
        arms: the networks. Each is built from `config.seed`: layers that match start
            with identical weights, and every arm sees the same batches, so the skip
            connections are the only difference.
        data: the dataset.
        config: the training settings.
        interrupt: polled between arms, blocks and validation batches; when it returns
            True, `step` returns early with nothing half-done, so a waiting command (stop,
            pause) lands within a fraction of a step. The round goes on at the next call.
        log_factory: (arm, layers, parameter names) -> the arm's RunLog; default: a
            RunLog in memory.
    """

    def __init__(
        self,
        arms: Iterable[Arm],
        data: TensorData,
        config: TrainConfig,
        *,
        interrupt: Callable[[], bool] | None = None,
        log_factory: Callable[[str, tuple[str, ...], tuple[str, ...]], RunLog] | None = None,
    ):
        self.config = config
        self.trainers: dict[str, Trainer] = {}
        device = pick_device(config.device)
        if data.device != device:  # once for every arm, not one copy each
            data = data.to(device)
        for arm in arms:
            net = build(arm.spec, seed=config.seed)
            if arm.init is not None:  # a transfer: trained weights, some of them frozen
                arm.init.apply(net)
            log = None
            if log_factory is not None:  # e.g. a log that writes through to the run store
                names = tuple(n for n, p in net.named_parameters() if p.requires_grad)
                log = log_factory(arm.name, layer_names(net), names)
            trainer = Trainer(net, data, config, log=log, interrupt=interrupt)
            spec = arm.spec.to_json(indent=None)
            # spec: as it is now (live skip toggles applied); spec_start: as submitted
            trainer.log.set_meta(arm=arm.name, spec=spec, spec_start=spec)
            self.trainers[arm.name] = trainer
        first = next(iter(self.trainers.values()))
        self.torch_device = first.device
        self.device = describe_device(first.device)
        self.classes = data.classes
        self.status, self.message = RUNNING, ""
        self.seconds = 0.0  # wall clock inside step(): every arm's round counted once
        self.images_per_s = 0.0
        self._rate_mark = (0, 0.0)  # (images, seconds) where the rate window began
        self._first_round = (0, 0.0)  # (steps, seconds) when the first round ended
        self._interrupt = interrupt or (lambda: False)
        self._scheduled: list[Command] = []  # commands waiting for their step
        self.spec_changes = 0  # counts applied skips: a worker stores the specs anew

    # -- what the pages read ------------------------------------------------------------

    @property
    def logs(self) -> dict[str, RunLog]:
        return {name: t.log for name, t in self.trainers.items()}

    @property
    def step_count(self) -> int:
        """Steps every arm has taken."""
        return min(t.step_count for t in self.trainers.values())

    @property
    def total_steps(self) -> int:
        return max(t.total_steps for t in self.trainers.values())

    @property
    def ended(self) -> bool:
        return self.status not in (RUNNING, PAUSED)

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the pace of the rounds so far, one clock for all arms (two arms
        trained in turn count each round once); the first round, which pays for warm-up,
        is left out once there are others. None unless training."""
        steps = self.step_count
        if self.status != RUNNING or steps == 0 or self.seconds <= 0:
            return None
        first_steps, first_s = self._first_round
        pace = (self.seconds - first_s) / (steps - first_steps) if steps > first_steps else 0
        return (self.total_steps - steps) * (pace or self.seconds / steps)

    @property
    def rate(self) -> float:
        """Images per second over all arms while training; 0 when paused or ended."""
        return self.images_per_s if self.status == RUNNING else 0.0

    def skips(self) -> dict[str, dict[int, bool]]:
        return {name: t.net.skips() for name, t in self.trainers.items()}

    def specs(self) -> dict[str, NetSpec]:
        """Each arm's spec as it is now, live skip toggles applied."""
        return {name: t.net.current_spec() for name, t in self.trainers.items()}

    def weights(self, arm: str) -> Weights:
        """A CPU copy of one arm's weights, with its current spec."""
        net = self.trainers[arm].net
        state = {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}
        return Weights(net.current_spec(), state)

    # -- training -----------------------------------------------------------------------

    def step(self) -> None:
        """One round: every arm behind the others takes one step (interleaved, so their
        curves grow together). Ends the run when every arm is done or one diverges."""
        if self.status != RUNNING:
            return
        target = self.step_count + 1
        start = time.perf_counter()
        try:
            for trainer in self.trainers.values():
                if self._interrupt():  # between arms: a command waits
                    break
                if trainer.step_count < target or trainer.eval_due:
                    trainer.step()
        except Interrupted:
            pass  # the interrupted arm takes its step again at the next call
        except DivergedError as e:  # the arm logged its own 'diverged' event
            self._end(DIVERGED, e.args[0])  # say()'s text, translated where it is shown
        finally:
            self.seconds += time.perf_counter() - start
        if self._first_round == (0, 0.0) and self.step_count > 0:
            self._first_round = (self.step_count, self.seconds)
        self._measure_rate()
        if self.status == RUNNING and all(t.done for t in self.trainers.values()):
            self._end(FINISHED, "", event=("finished", "done"))
        self._apply_due()  # the step they wait for has come: before the next one runs

    def _measure_rate(self) -> None:
        images = sum(t.step_count for t in self.trainers.values()) * self.config.batch_size
        marked_images, marked_s = self._rate_mark
        span = self.seconds - marked_s
        if span >= RATE_WINDOW_S or (self.images_per_s == 0 and span > 0):
            self.images_per_s = (images - marked_images) / span
            self._rate_mark = (images, self.seconds)

    # -- commands -----------------------------------------------------------------------

    @property
    def scheduled(self) -> tuple[Command, ...]:
        """Commands waiting for their step, in the order they will be applied."""
        return tuple(self._scheduled)

    def apply(self, command: Command) -> None:
        """Apply one command between steps: now, or with `at_step` when the run has taken
        that many steps (before the next step runs). A refused skip or lr is logged as a
        'rejected' event and the run goes on; an ended run ignores every command."""
        if self.ended:
            return
        if command.at_step is not None and command.at_step > self.step_count:
            self._scheduled.append(command)  # stable: same step, order sent
            self._scheduled.sort(key=lambda c: c.at_step)
            return
        match command:
            case Command(kind="stop"):
                message = f"stopped at step {self.step_count}"
                self._end(STOPPED, message, event=("stop", "stopped"))
            case Command(kind="pause") if self.status == RUNNING:
                self._pause(True)
            case Command(kind="resume") if self.status == PAUSED:
                self._pause(False)
            case Command(kind="skip", block=block, on=on, arm=arm):
                self._each(arm, lambda t: t.set_skip(on, block))
                self._store_specs()
                self.spec_changes += 1
            case Command(kind="lr", value=value, arm=arm):
                self._each(arm, lambda t: t.set_lr(value))
            case _:
                pass  # a repeated pause or resume changes nothing

    def _apply_due(self) -> None:
        """Apply the scheduled commands whose step has come (every arm is at it)."""
        while not self.ended and self._scheduled and self._scheduled[0].at_step <= self.step_count:
            self.apply(dataclasses.replace(self._scheduled.pop(0), at_step=None))

    def fail(self, message: str) -> None:
        """End the run as failed; `message` is written for the user."""
        if not self.ended:
            self._end(FAILED, message, event=("failed", message))

    def _pause(self, pausing: bool) -> None:
        """A run pauses as a whole, every arm at the same step."""
        kind = "pause" if pausing else "resume"
        for t in self.trainers.values():
            t.pause_clock() if pausing else t.resume_clock()
            t.log.append_event(Event(step=t.step_count, kind=kind, detail=f"{kind}d"))
        self.status = PAUSED if pausing else RUNNING

    def _each(self, arm: str | None, change: Callable[[Trainer], None]) -> None:
        for name, t in self.trainers.items():
            if arm not in (None, name):
                continue
            try:
                change(t)
            except ValueError as e:  # refused: logged where the user sees it
                t.log.append_event(Event(step=t.step_count, kind="rejected", detail=str(e)))

    def _store_specs(self) -> None:
        for name, spec in self.specs().items():
            text = spec.to_json(indent=None)
            log = self.trainers[name].log
            if log.meta.get("spec") != text:
                log.set_meta(spec=text)

    def _end(self, status: str, message: str, event: tuple[str, str] | None = None) -> None:
        if event is not None:
            kind, detail = event
            for t in self.trainers.values():
                t.log.append_event(Event(step=t.step_count, kind=kind, detail=detail))
        self._store_specs()
        self.status, self.message = status, message


def failure_message(error: Exception, step: int | None) -> str:
    """What the page says about a failed run: the error's own words when it was written
    for a user, else a plain sentence; the traceback goes to the server log."""
    if isinstance(error, ExplainedError):
        return str(error)
    when = say("at step {step}", step=step) if step is not None else say("before its first step")
    text = str(error)
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)) or (
        "out of memory" in text or "can't allocate memory" in text
    ):
        return say(
            "the run ran out of memory {when}; use a smaller batch size or a smaller network",
            when=when,
        )
    return say(
        "the run failed {when} because of an error in the server; the details are in the "
        "server log",
        when=when,
    )
