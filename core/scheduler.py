"""The scheduling policy with its state, as both job managers keep it: a ticket per active
run and the ledger of training time (core.scheduling holds the pure rules). No threads
here: the manager calls it under its own lock. No torch: the GPU's free memory is asked
through a function the manager passes.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Sequence

from core.scheduling import (
    Ledger,
    Policy,
    Ticket,
    admit,
    check_fits,
    check_quota,
    check_room,
    check_steps,
    fair_order,
    gpu_capacity,
    over_quota,
    positions,
    quota_used,
)
from core.words import say


class Scheduler:
    """The policy with its state: a ticket per active run and the ledger of training
    time. Not thread-safe: the job manager calls it under its own lock.

    Args:
        policy: the limits.
        free_gpu: the GPU's free memory in bytes now, or None without a GPU (the manager
            passes torch's; tests pass a number).
        clock: seconds, monotonic.
    """

    def __init__(self, policy: Policy, free_gpu=lambda: None, clock=time.monotonic):
        self.policy, self.free_gpu, self.clock = policy, free_gpu, clock
        self.ledger = Ledger(policy.window_s)
        self.tickets: dict[str, Ticket] = {}
        self._seq = itertools.count()

    def check(
        self,
        owner: str,
        client: str | None,
        *,
        owner_active: int,
        waiting: int,
        steps: int | None,
        memory: int,
        gpu: bool,
        running: Sequence[str],
    ) -> None:
        """Every refusal at submit (and at resume), the first that applies."""
        active = None if client is None else sum(t.client == client for t in self.tickets.values())
        check_room(self.policy, owner_active=owner_active, client_active=active, waiting=waiting)
        check_steps(self.policy, steps)
        check_quota(self.policy, self.ledger, owner, self.clock())
        if gpu:
            held = sum(t.memory for t in self._of(running) if t.gpu)
            check_fits(self.policy, memory, gpu_capacity(self.policy, self.free_gpu(), held))

    def add(
        self,
        run: str,
        owner: str,
        client: str | None,
        memory: int = 0,
        gpu: bool = False,
        first: bool = False,
    ) -> None:
        """A run joins the queue (again, `first` after it gave its place away)."""
        self.tickets[run] = Ticket(run, owner, client, next(self._seq), memory, gpu, first)

    def leave(self, run: str) -> None:
        """A run has ended (or waits outside the queue, released): no longer counted."""
        self.ledger.stop(run, self.clock())
        self.tickets.pop(run, None)

    def started(self, run: str) -> None:
        ticket = self.tickets[run]
        self.ledger.start(run, ticket.owner, self.clock())

    def released(self, run: str) -> None:
        """A paused run gave its place away: its time stops, it stays counted."""
        self.ledger.stop(run, self.clock())

    def starts(self, waiting: Sequence[str], running: Sequence[str]) -> list[str]:
        """Which of the `waiting` runs start now, in order."""
        queued, busy = self._of(waiting), self._of(running)
        owners = [t.owner for t in (*queued, *busy)]
        now = self.clock()
        order = fair_order(queued, self.ledger.usage(owners, now), _holding(busy))
        capacity = None
        if any(t.gpu for t in queued):
            held = sum(t.memory for t in busy if t.gpu)
            capacity = gpu_capacity(self.policy, self.free_gpu(), held)
        blocked = over_quota(self.policy, self.ledger, owners, now)
        return [t.id for t in admit(order, busy, self.policy, capacity, blocked)]

    def positions(self, waiting: Sequence[str], running: Sequence[str]) -> dict[str, int]:
        queued, busy = self._of(waiting), self._of(running)
        used = self.ledger.usage([t.owner for t in (*queued, *busy)], self.clock())
        return positions(queued, used, _holding(busy))

    def out_of_time(self, run: str) -> str | None:
        """Why a training run must stop now (its owner's time is used up), else None."""
        ticket = self.tickets.get(run)
        if ticket is None or not self.policy.owner_seconds:
            return None
        used = self.ledger.used(ticket.owner, self.clock())
        if used < self.policy.owner_seconds:
            return None
        return say("{text}, so this run stopped", text=quota_used(self.policy, used))

    def _of(self, runs: Sequence[str]) -> list[Ticket]:
        return [self.tickets[r] for r in runs if r in self.tickets]


def _holding(running: Sequence[Ticket]) -> dict[str, int]:
    return dict(Counter(t.owner for t in running))
