"""The process backend's queue and commands: which slot starts next (core.scheduler's
fair order and admission), the queue positions pages show, commands down a worker's pipe
as JSON (a command for a later step is kept, to be sent again to a worker that resumes
the run), and the stop of a run whose owner's training time is used up.

A mixin of `core.workers.ProcessJobManager`: it uses the manager's lock (callers hold it
unless a method says otherwise), `_queue`, `_running`, `_slots`, `store`, `scheduler`,
`_scheduled` and `_spawn`.
"""

from __future__ import annotations

import dataclasses
import json

from core.jobs_api import on_gpu, training_bytes
from core.run import QUEUED, STOPPED, Arm, Command
from core.store_records import RunInfo, StoreError
from core.worker_slots import Slot


class SlotQueue:
    """Queue and command paths of the process manager (see the module's docstring)."""

    def _deliver(self, slot: Slot, command: Command) -> None:
        """To the worker now, or when it has started. Caller holds the lock."""
        if not slot.ready:
            slot.pending.append(command)
            return
        raw = dataclasses.asdict(command)  # JSON: every field travels, at_step too
        if command.at_step is not None:  # sent again to a worker that resumes the run
            self._scheduled.setdefault(slot.id, []).append(raw)
        if not self._call(slot, raw):
            return  # the worker is gone; the monitor says why
        if command.kind in ("stop", "pause") and command.at_step is None:
            self._interrupt(slot)

    def _call(self, slot: Slot, raw: dict) -> bool:
        """Send one JSON message down the worker's pipe; False when the worker is gone."""
        try:
            slot.conn.send_bytes(json.dumps(raw).encode())
        except OSError:
            return False
        return True

    def _interrupt(self, slot: Slot) -> None:
        """Raise the shared flag, so a stop or a pause lands within the current step."""
        slot.flag.value = 1  # after the send: the worker clears it, then drains

    def _send_released(self, slot: Slot, row: RunInfo, command: Command) -> None:
        """A command to a paused run without a worker. Caller holds the lock."""
        if command.at_step is not None and command.kind != "resume":
            slot.pending.append(command)  # for a step to come: sent when it trains again
            return
        if command.kind == "resume":  # first in the queue: it had its place before
            slot.released, slot.resume = False, True
            self.store.update_run(
                slot.id,
                status=QUEUED,
                message="resumed: it continues as soon as a training place is free",
            )
            self.scheduler.add(slot.id, slot.owner, *self._terms(slot.id), first=True)
            self._queue.append(slot)
            self._start_next()
        elif command.kind == "stop":
            self.store.finish(slot.id, STOPPED, f"stopped at step {row.step}")
            slot.released = False
            self.scheduler.leave(slot.id)
            slot.done.set()
        elif command.kind != "pause":
            slot.pending.append(command)  # skip, lr: applied when it trains again

    def _check(self, owner, client, active, steps, memory, gpu) -> None:
        """Every refusal of core.scheduling at submit. Caller holds the lock."""
        waiting, running = len(self._queue), list(self._running)
        self.scheduler.check(
            owner, client, owner_active=active, waiting=waiting, steps=steps, memory=memory,
            gpu=gpu, running=running,
        )  # fmt: skip

    def _terms(self, job_id: str) -> tuple:
        """A ticket's client, memory and device, kept when it queues again."""
        t = self.scheduler.tickets.get(job_id)
        return (t.client, t.memory, t.gpu) if t is not None else (None, 0, False)

    def _resume_terms(self, row: RunInfo) -> tuple[int, bool]:
        """A stored run's training memory and device, for the scheduler at resume."""
        arms = [Arm(a, now or start) for a, (start, now) in self.store.specs(row.id).items()]
        return training_bytes(arms, row.config.batch_size), on_gpu(row.config.device)

    def _positions(self) -> dict[str, int]:
        """Queue positions in the order runs will start. Caller holds the lock."""
        waiting = [s.id for s in self._queue]
        return self.scheduler.positions(waiting, list(self._running)) if waiting else {}

    def _start_next(self) -> None:
        """Start the queued jobs the scheduler lets in, in its order. Caller holds the lock."""
        waiting = {s.id: s for s in self._queue}
        for job_id in self.scheduler.starts(list(waiting), list(self._running)) if waiting else ():
            self._queue.remove(waiting[job_id])
            self.scheduler.started(job_id)
            self._spawn(waiting[job_id])

    def _check_time(self, slot: Slot) -> None:
        """Stop a training run whose owner's time is used up (the monitor asks)."""
        with self._lock:
            if slot.id not in self._running or slot.id in self._out_of_time:
                return
            why = self.scheduler.out_of_time(slot.id)
            if why is not None:
                self._out_of_time[slot.id] = why
                self._deliver(slot, Command("stop"))

    def _explain_stop(self, slot: Slot) -> None:
        """A run stopped for its owner's time says so (after its worker wrote "stopped")."""
        why = self._out_of_time.pop(slot.id, None)
        try:
            row = self.store.run(slot.id) if why is not None else None
        except StoreError:
            row = None
        if row is not None and row.status == STOPPED:
            self.store.update_run(slot.id, message=f"{why} at step {row.step}")
