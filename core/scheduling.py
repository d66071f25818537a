"""Who trains next, how many train at once, and what one browser may ask: the scheduling
policy both job managers follow (core.jobs on threads, core.workers in processes).

Pure: every function takes the state it decides on (the waiting and running runs, the
training time each owner used, the clock, the free GPU memory) and returns a decision or
raises a `JobError` whose message says what to do. No threads, no torch work, no store.

- Fair: the next run to start is the oldest waiting run of the owner who held a training
  place least in the last `window_s` (round robin between owners), and the queue
  positions the pages show are that same order.
- Several at once: runs on the GPU start while their estimated training memory fits a
  share of the GPU's memory; runs on the CPU start up to `max_cpu_runs`, each with its
  share of the cores (`app.services.threads_per_job`).
- Caps a fresh `?me=` token does not reset: active runs per client address as well as per
  owner, a step budget per run, and training minutes per owner and hour.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from core.jobs_api import JobError
from core.limits import (
    FAIR_WINDOW_S,
    GPU_SHARE,
    MAX_GPU_RUNS,
    MAX_PER_CLIENT,
    env_number,
)
from core.words import say

GIB = 2**30


@dataclass(frozen=True)
class Ticket:
    """A waiting or running run as the scheduler sees it."""

    id: str
    owner: str
    client: str | None  # the browser's address; None when unknown (e.g. localhost)
    seq: int  # submission order: lower is older
    memory: int = 0  # estimated training bytes (core.jobs_api.check_device_memory)
    gpu: bool = False  # trains on the GPU: admitted by memory, not by CPU places
    first: bool = False  # resumed after it gave its place away: it had a place, goes first


@dataclass(frozen=True, kw_only=True)
class Policy:
    """The limits a teacher sets (environment variables, see `from_env`); 0 turns a
    budget or a per-address cap off."""

    max_cpu_runs: int = 1  # runs training on the CPU at once
    max_gpu_runs: int = MAX_GPU_RUNS  # runs on the GPU at once, if their memory fits
    gpu_share: float = GPU_SHARE  # of the GPU's free memory, for all runs together
    max_per_owner: int = 3  # waiting or running runs per browser (token)
    max_per_client: int = MAX_PER_CLIENT  # ... per client address, whatever its tokens
    max_queue: int = 50  # waiting runs in all
    max_steps: int = 0  # steps per run
    owner_seconds: float = 0.0  # seconds of training place per owner in `window_s`
    window_s: float = FAIR_WINDOW_S  # "recently", for fairness and the quota

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **given) -> Policy:
        """The policy from RESNET_EXPLORER_* variables; `given` values win (arguments)."""
        env = os.environ if environ is None else environ
        values = {
            "gpu_share": env_number(env, "RESNET_EXPLORER_GPU_SHARE", GPU_SHARE, 0.0, 1.0),
            "max_per_client": int(
                env_number(env, "RESNET_EXPLORER_MAX_PER_ADDRESS", MAX_PER_CLIENT, 0)
            ),
            "max_steps": int(env_number(env, "RESNET_EXPLORER_MAX_STEPS", 0, 0)),
            "owner_seconds": 60 * env_number(env, "RESNET_EXPLORER_OWNER_MINUTES", 0, 0),
        }
        return cls(**(values | {k: v for k, v in given.items() if v is not None}))


# -- the order --------------------------------------------------------------------------


def fair_order(
    waiting: Sequence[Ticket], used: Mapping[str, float], holding: Mapping[str, int] = {}
) -> list[Ticket]:
    """The order in which `waiting` runs start (queue position 1 first).

    Resumed runs that gave their place away go first (oldest first). Then round robin:
    an owner's k-th oldest waiting run is in round k + the places the owner `holding`s
    now (a student with a run training waits behind everyone else's first); within a
    round, owners by the training time they `used` recently (least first; a tie goes to
    the owner whose oldest run is older). Starting position 1 therefore moves everyone
    else up by one and changes no one else's order.
    """
    first = sorted((t for t in waiting if t.first), key=lambda t: t.seq)
    mine: dict[str, list[Ticket]] = {}
    for t in sorted((t for t in waiting if not t.first), key=lambda t: t.seq):
        mine.setdefault(t.owner, []).append(t)
    keyed = [
        ((holding.get(o, 0) + k, used.get(o, 0.0), runs[0].seq, k), t)
        for o, runs in mine.items()
        for k, t in enumerate(runs)
    ]
    return first + [t for _, t in sorted(keyed, key=lambda kt: kt[0])]


def positions(
    waiting: Sequence[Ticket], used: Mapping[str, float], holding: Mapping[str, int] = {}
) -> dict[str, int]:
    """Run id -> queue position (1 = next to start), in `fair_order`."""
    return {t.id: i for i, t in enumerate(fair_order(waiting, used, holding), start=1)}


def admit(
    order: Sequence[Ticket],
    running: Sequence[Ticket],
    policy: Policy,
    gpu_capacity: int | None,
    blocked: frozenset[str] | set[str] = frozenset(),
) -> list[Ticket]:
    """The runs of `order` to start now, in that order.

    A CPU run needs a free CPU place; a GPU run needs a GPU place and its memory within
    `gpu_capacity` (bytes all GPU runs may hold; None: no GPU, no GPU run starts). Order
    is kept per resource: the first run that does not fit stops the runs of its kind
    behind it (no small run overtakes a big one forever), not those of the other kind.
    Owners in `blocked` (their training time is used up) wait without blocking others.
    """
    cpu = sum(not t.gpu for t in running)
    gpus = [t for t in running if t.gpu]
    held = sum(t.memory for t in gpus)
    stuck = {False: cpu >= policy.max_cpu_runs, True: False}
    chosen = []
    for t in order:
        if t.owner in blocked or stuck[t.gpu]:
            continue
        if not t.gpu:
            chosen.append(t)
            cpu += 1
            stuck[False] = cpu >= policy.max_cpu_runs
        elif (
            gpu_capacity is not None
            and len(gpus) < policy.max_gpu_runs
            and held + t.memory <= gpu_capacity
        ):
            chosen.append(t)
            gpus.append(t)
            held += t.memory
        else:
            stuck[True] = True
    return chosen


def gpu_capacity(policy: Policy, free: int | None, held: int) -> int | None:
    """Bytes all GPU runs may hold: the share of what would be free without our runs
    (`free` now, plus the estimates `held` by our running runs). None without a GPU."""
    if free is None:
        return None
    return int(policy.gpu_share * (free + held))


# -- training time ------------------------------------------------------------------------


@dataclass
class Ledger:
    """Seconds each owner held a training place (running, or paused without giving the
    place away): that is what others waited for. Only the last `window_s` counts."""

    window_s: float = FAIR_WINDOW_S
    _spans: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # owner ->
    _open: dict[str, tuple[str, float]] = field(default_factory=dict)  # run -> owner, since

    def start(self, run: str, owner: str, now: float) -> None:
        self._open.setdefault(run, (owner, now))

    def stop(self, run: str, now: float) -> None:
        if run in self._open:
            owner, since = self._open.pop(run)
            spans = self._spans.setdefault(owner, [])
            spans.append((since, now))
            cut = now - self.window_s  # forget what the window no longer sees
            spans[:] = [(a, b) for a, b in spans if b > cut]

    def used(self, owner: str, now: float) -> float:
        """Seconds `owner` held places in (now - window_s, now], open places included."""
        spans = list(self._spans.get(owner, ()))
        spans += [(since, now) for o, since in self._open.values() if o == owner]
        cut = now - self.window_s
        return sum(max(0.0, min(b, now) - max(a, cut)) for a, b in spans)

    def usage(self, owners, now: float) -> dict[str, float]:
        return {o: self.used(o, now) for o in set(owners)}

    def running(self, owner: str) -> bool:
        return any(o == owner for o, _ in self._open.values())

    def wait_below(self, owner: str, limit: float, now: float) -> float:
        """Seconds until `owner` has used less than `limit` with nothing running (the
        window slides past old time); 0 if already below, inf while a place is held."""
        if self.used(owner, now) < limit:
            return 0.0
        if self.running(owner):
            return math.inf
        lo, hi = 0.0, self.window_s
        for _ in range(40):  # used() only falls as the window slides: bisect
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.used(owner, now + mid) >= limit else (lo, mid)
        return hi


# -- refusals at submit -------------------------------------------------------------------


def check_room(
    policy: Policy, *, owner_active: int, client_active: int | None, waiting: int
) -> None:
    """Refuse a run past the cap per owner, per client address (None: address unknown,
    not counted) or the queue's."""
    if owner_active >= policy.max_per_owner:
        raise JobError(
            f"you already have {owner_active} runs waiting or running (the limit is "
            f"{policy.max_per_owner}); stop one or wait for it to finish"
        )
    cap = policy.max_per_client
    if cap and client_active is not None and client_active >= cap:
        raise JobError(
            f"{client_active} runs from this computer are waiting or running already, "
            f"in all its browser tabs (the limit is {cap}); stop one or wait for it to finish"
        )
    if waiting >= policy.max_queue:
        raise JobError(
            f"the server's queue is full ({waiting} runs waiting); try again in a few minutes"
        )


def check_steps(policy: Policy, steps: int | None) -> None:
    """Refuse a run longer than the step budget (None: its length is not known yet)."""
    if policy.max_steps and steps is not None and steps > policy.max_steps:
        raise JobError(
            f"this run would take {steps:,} steps, {steps - policy.max_steps:,} more than the "
            f"{policy.max_steps:,} the teacher allows per run; choose fewer steps or epochs"
        )


def quota_used(policy: Policy, used: float) -> str:
    """That an owner's training time for this hour is used up."""
    return say(
        "you have used your {minutes:g} minutes of training time for this hour ({used:.0f} min)",
        minutes=policy.owner_seconds / 60,
        used=used / 60,
    )


def quota_message(policy: Policy, used: float, wait: float) -> str:
    """Why an owner may not train now, and when they may again."""
    text = quota_used(policy, used)
    if math.isinf(wait):
        return say("{text}; stop a run that is training, or wait for it to end", text=text)
    return say(
        "{text}; a new run can start in about {n} min", text=text, n=max(1, round(wait / 60))
    )


def check_quota(policy: Policy, ledger: Ledger, owner: str, now: float) -> None:
    """Refuse a new run to an owner whose training time this hour is used up."""
    if not policy.owner_seconds:
        return
    used = ledger.used(owner, now)
    if used >= policy.owner_seconds:
        wait = ledger.wait_below(owner, policy.owner_seconds, now)
        raise JobError(quota_message(policy, used, wait))


def over_quota(policy: Policy, ledger: Ledger, owners, now: float) -> set[str]:
    """The owners among `owners` whose training time is used up."""
    if not policy.owner_seconds:
        return set()
    return {o for o in set(owners) if ledger.used(o, now) >= policy.owner_seconds}


def check_fits(policy: Policy, memory: int, capacity: int | None) -> None:
    """Refuse a GPU run that would not fit even with the GPU to itself, by how much."""
    if capacity is None or memory <= capacity:
        return
    raise JobError(
        f"this run needs {memory / GIB:.2f} GiB of GPU memory for training, "
        f"{(memory - capacity) / GIB:.2f} GiB more than the {capacity / GIB:.2f} GiB the "
        f"runs of this server may use ({policy.gpu_share:.0%} of the GPU's free memory); "
        "use a smaller batch size or a smaller network"
    )
