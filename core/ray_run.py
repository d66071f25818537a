"""The body of one run on a Ray cluster (started by `core.ray_jobs.RayJobManager`): a
plain class that Ray turns into an actor, so it imports no Ray and a test could drive it
on its own.

It trains the same synchronous `core.run.Run` the other backends drive; nothing of the
training is written again here. The actor touches no disk and no database: every record
(steps, evaluations, events), each arm's spec after a live toggle and each checkpoint
waits in an `Outbox` until the manager pulls it (a few times a second), and the manager
writes it through the run store in the app's process. Checkpoints come as the same
safetensors bytes `core.checkpoint` writes; a resumed run gets them back as bytes.

Three calls reach the actor, on a threaded actor (so they arrive while `train` runs):
`train` (the long call: builds the run and drives it to its end), `command` (numbered by
the manager, applied in that order between steps; a stop or pause also raises the
Trainer's interrupt flag, so it lands within a fraction of a step) and `pull`.
"""

from __future__ import annotations

import queue
import tempfile
import threading
import traceback
from pathlib import Path

import torch

from core.arm_init import init_from_bytes
from core.checkpoint import checkpoint_bytes
from core.config import TrainConfig
from core.run import PAUSED, Arm, Command, Run, failure_message
from core.run_state import checkpoint_run, restore_trainer
from core.spec import NetSpec
from core.store_writer import StoringRunLog
from core.telemetry import Event
from core.worker_process import data_from_bytes

WAIT_S = 0.5  # a paused run looks at its commands this often
RELEASED = "released"  # what `train` answers when a paused run gave its place away


class Outbox:
    """What the run has to tell the manager since its last pull. It stands where the
    process backend's RunWriter stands: `StoringRunLog` hands it every record, and
    `core.run_state.checkpoint_run` its checkpoints."""

    def __init__(self):
        self.lock = threading.Lock()
        self._take()

    def _take(self) -> dict:
        taken = getattr(self, "_items", None)
        self._items = {"arms": {}, "steps": [], "evals": [], "events": [], "specs": {}}
        self._items["checkpoints"] = {}
        return taken

    def step(self, arm, record) -> None:
        with self.lock:
            self._items["steps"].append((arm, record))

    def eval(self, arm, record) -> None:
        with self.lock:
            self._items["evals"].append((arm, record))

    def event(self, arm, event) -> None:
        with self.lock:
            self._items["events"].append((arm, event))

    def spec(self, arm: str, spec: NetSpec) -> None:
        with self.lock:
            self._items["specs"][arm] = spec.to_json(indent=None)

    def log(self, arm: str, layers, param_names=()) -> StoringRunLog:
        """A RunLog whose every append also lands here (give it to the Trainer)."""
        with self.lock:
            self._items["arms"][arm] = (tuple(layers), tuple(param_names))
        return StoringRunLog(self, arm, layers, param_names)

    def checkpoint(self, arm, model, optimizer=None, generators=None, *, step, extra=None):
        data = checkpoint_bytes(model, optimizer, generators, step=step, extra=extra)
        with self.lock:
            self._items["checkpoints"][arm] = data  # the newest wins

    def drain(self) -> dict:
        """Everything since the last drain, in the order it happened (per kind)."""
        with self.lock:
            return self._take()


class RunActor:
    """One run, trained where Ray placed it.

    Args:
        job: {"config": TrainConfig JSON, "arms": {store arm id: NetSpec JSON},
            "threads": torch intra-op threads, "checkpoint_every": steps}.
    """

    def __init__(self, job: dict):
        self.job = job
        self.outbox = Outbox()
        self.run: Run | None = None
        self.state = threading.Lock()  # a pull never sees a pause without its checkpoint
        self.commands: queue.SimpleQueue = queue.SimpleQueue()
        self.urgent = threading.Event()
        self._order = threading.Lock()
        self._waiting: dict[int, dict] = {}
        self._next = 0
        self.last_checkpoint = 0

    # -- what the manager calls ------------------------------------------------------------

    def command(self, seq: int, raw: dict) -> None:
        """Queue command number `seq` ({"kind": ...} as core.run.Command, or "release");
        Ray may run two calls at once, so they are put back in the manager's order."""
        with self._order:
            self._waiting[seq] = raw
            while self._next in self._waiting:
                ready = self._waiting.pop(self._next)
                self.commands.put(ready)
                self._next += 1
                if ready["kind"] in ("stop", "pause", "release") and ready.get("at_step") is None:
                    self.urgent.set()  # after the put: the loop clears it, then drains

    def pull(self) -> dict:
        """The records since the last pull and the run's live numbers."""
        with self.state:
            items = self.outbox.drain()
            run = self.run
            if run is not None:
                items["report"] = {
                    "status": run.status,
                    "step": run.step_count,
                    "total": run.total_steps,
                    "eta": run.eta_seconds,
                    "rate": run.rate,
                    "message": run.message,
                    "device": run.device,
                    "classes": list(run.classes),
                }
            return items

    def train(self, data: bytes, checkpoints: dict | None = None, inits: dict | None = None):
        """Build the run (from its checkpoints when resumed; arms in `inits` from those
        initial weights, a transfer's) and drive it until it ends or gives its place away.
        Returns {"status", "message"} and, on a failure, "error". Every value is bytes of
        safetensors, by arm."""
        torch.set_num_threads(self.job.get("threads", 1))
        try:
            run = self._build(data_from_bytes(data), checkpoints or {}, inits or {})
            with self.state:
                self.run = run
            released = self._drive(run)
        except Exception as e:  # this run ends, said why; the traceback goes to the manager
            run = self.run
            message = failure_message(e, run.step_count + 1 if run is not None else None)
            with self.state:
                if run is not None:
                    run.fail(message)
            return {"status": "failed", "message": message, "error": traceback.format_exc()}
        if released:  # changes made while paused (an lr) go into its resume point
            self._checkpoint(run)
            return {"status": RELEASED, "message": ""}
        self._checkpoint(run)  # the final weights, for Explain
        return {"status": run.status, "message": run.message}

    # -- inside the actor ------------------------------------------------------------------

    def _build(self, data, checkpoints: dict[str, bytes], inits: dict[str, bytes]) -> Run:
        config = TrainConfig.from_json(self.job["config"])
        arms = [
            Arm(a, NetSpec.from_json(s), init_from_bytes(inits[a]) if a in inits else None)
            for a, s in self.job["arms"].items()
        ]
        run = Run(
            arms,
            data,
            config,
            interrupt=self.urgent.is_set,
            log_factory=lambda arm, layers, names: self.outbox.log(arm, layers, names),
        )
        if checkpoints:
            self._restore(run, checkpoints)
        for raw in self.job.get("scheduled") or ():  # sent to an earlier actor of this run
            if raw.get("at_step") is not None and raw["at_step"] > run.step_count:
                run.apply(Command(**raw))  # waits in the Run again for its step
        return run

    def _restore(self, run: Run, checkpoints: dict[str, bytes]) -> None:
        """Continue from the checkpoints the manager read from its store (a resume)."""
        with tempfile.TemporaryDirectory(prefix="resnet-explorer-") as folder:
            for name, t in run.trainers.items():
                path = Path(folder) / f"{name}.safetensors"
                path.write_bytes(checkpoints[name])
                step = restore_trainer(t, path)
                detail = f"resumed from its checkpoint at step {step}"
                t.log.append_event(Event(step=step, kind="resume", detail=detail))
        self.last_checkpoint = run.step_count

    def _drive(self, run: Run) -> bool:
        """Train until the run ends; True when, paused, it was asked to give its place
        away (its checkpoint then holds everything a resume needs)."""
        every = self.job.get("checkpoint_every", 100)
        while not run.ended:
            self.urgent.clear()  # then take every waiting command
            if self._apply_waiting(run):
                return True
            if run.status == PAUSED:
                if self._paused(run):
                    return True
                continue
            with self.state:  # a command for this step (at_step) lands at its end
                before = (run.status, run.spec_changes)
                run.step()
                self._landed(run, *before)
            if run.step_count - self.last_checkpoint >= every and not run.ended:
                self._checkpoint(run)
        return False

    def _landed(self, run: Run, status: str, spec_changes: int) -> None:
        """What a command scheduled for the step just taken changed. Caller holds `state`."""
        if run.spec_changes != spec_changes:
            for name, spec in run.specs().items():
                self.outbox.spec(name, spec)
        if run.status == PAUSED and status != PAUSED:
            self._checkpoint(run)

    def _apply_waiting(self, run: Run, timeout: float = 0.0) -> bool:
        """Apply every waiting command; True on a release while paused."""
        while True:
            try:
                raw = self.commands.get(timeout=timeout) if timeout else self.commands.get_nowait()
            except queue.Empty:
                return False
            timeout = 0.0
            if raw["kind"] == "release":
                if run.status == PAUSED:
                    return True
                continue
            self._apply(run, Command(**raw))

    def _apply(self, run: Run, command: Command) -> None:
        with self.state:
            before = run.status
            run.apply(command)
            if command.kind == "skip":
                for name, spec in run.specs().items():
                    self.outbox.spec(name, spec)
            # Weights stand still: a copy for Explain and a resume point, with the skips
            # as they are (a skip toggled while paused too).
            if run.status == PAUSED and (before != PAUSED or command.kind == "skip"):
                self._checkpoint(run)

    def _paused(self, run: Run) -> bool:
        while run.status == PAUSED:
            if self._apply_waiting(run, timeout=WAIT_S):
                return True
        return False

    def _checkpoint(self, run: Run) -> None:
        checkpoint_run(run, self.outbox)
        self.last_checkpoint = run.step_count
