"""The process backend's bookkeeping: a `Slot` per run it queued or started, the
JobInfo a page reads (from the store row and the worker's live report), the words for a
worker's exit, and starting a worker without the parent's `__main__`.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import sys
import threading
import time
import types
from dataclasses import dataclass, field

from core.data import DataRequest, TensorData
from core.jobs_api import JobInfo
from core.run import PAUSED, RUNNING
from core.store import RunStore
from core.store_records import RunInfo
from core.words import N_, say

log = logging.getLogger("resnet_explorer.workers")


@dataclass(eq=False)
class Slot:
    """A run this manager has queued or started in this process."""

    id: str
    owner: str
    name: str
    arms: dict[str, str]  # display name -> store id
    data: TensorData | None  # handed over in memory (tests); None: loaded from `request`
    request: DataRequest | None
    resume: bool = False
    process: mp.Process | None = None
    conn: object = None
    flag: object = None
    ready: bool = False  # the worker has its data: commands may go down the pipe
    pending: list = field(default_factory=list)  # commands waiting for a worker
    report: dict = field(default_factory=dict)
    paused_since: float | None = None
    releasing: bool = False
    released: bool = False
    done: threading.Event = field(default_factory=threading.Event)

    def hear(self, message: dict) -> None:
        """Take in what the worker said (caller holds the manager's lock)."""
        kind = message.get("kind")
        if kind == "report":
            self.report = message
            if message.get("status") != PAUSED:
                self.paused_since = None
            elif self.paused_since is None:
                self.paused_since = time.monotonic()
        elif kind == "released":
            self.released = True
        elif kind == "failed":  # the run's row says why; the traceback goes to the log
            log.error("run %s failed in its worker: %s", self.id, message.get("error"))


# A run's message when its worker ended it: stored as English, translated when shown.
INTERRUPTED_AT = N_(
    "interrupted at step {step}: {reason}; Resume continues from its last checkpoint"
)
STOPPED_AT = N_("the run stopped at step {step}: {reason}; start it again")


def job_info(store: RunStore, row: RunInfo, live: dict, position: int | None) -> JobInfo:
    """A run as the pages see it: the stored row, with the worker's live numbers."""
    names = display(row)
    specs = {names.get(a, a): now or start for a, (start, now) in store.specs(row.id).items()}
    skips = {a: {i: b.skip for i, b in enumerate(s.blocks) if b.residual} for a, s in specs.items()}
    classes = live.get("classes") or row.results.get("classes") or row.data.get("classes")
    training = row.status == RUNNING
    return JobInfo(
        id=row.id,
        owner=row.owner,
        name=row.name,
        status=row.status,
        message=row.message,
        arms=tuple(names.get(a, a) for a in row.arms),
        step=max(live.get("step", 0), row.step),
        total_steps=live.get("total") or row.total_steps,
        eta_seconds=live.get("eta") if training else None,
        images_per_s=live.get("rate", 0.0) if training else 0.0,
        queue_position=position,
        device=live.get("device") or row.device,
        created=row.created,
        config=row.config,
        skips=skips,
        specs=specs,
        classes=tuple(classes or ()),
        not_saved=live.get("not_saved", ""),
    )


def mark_dead(store: RunStore, row: RunInfo, exitcode: int | None) -> str:
    """A run whose worker died without ending it: interrupted (resumable) when every arm
    has a checkpoint, else failed; the reason in its message, which is returned."""
    reason = exit_reason(exitcode)
    step = store.mark_interrupted(row.id)
    if all(store.checkpoint_path(row.id, a).is_file() for a in row.arms):
        message = say(INTERRUPTED_AT, step=step, reason=reason)
        store.update_run(row.id, message=message, ended=time.time())
    else:
        message = say(STOPPED_AT, step=step, reason=reason)
        store.finish(row.id, "failed", message)
    return message


def exit_reason(exitcode: int | None) -> str:
    """Why a worker process ended, in words a teacher can read aloud."""
    if exitcode is not None and exitcode < 0:
        sig = -exitcode
        if sig == signal.SIGKILL:
            return say(
                "its training process was killed (the computer may have run out of memory, "
                "or someone ended the process)"
            )
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return say("its training process was ended by {name}", name=name)
    return say(
        "its training process exited unexpectedly (code {exitcode}); the details are in "
        "the server log",
        exitcode=exitcode,
    )


def display(row: RunInfo) -> dict[str, str]:
    """store id -> display name, in arm order."""
    shown = row.data.get("arms") or {}
    return {a: shown.get(a, a) for a in row.arms}


_main_lock = threading.Lock()


def start_bare(process: mp.Process) -> None:
    """Start a spawned process without re-running the parent's `__main__` in it.

    spawn runs the parent's main script again in the child (to find its functions);
    under Streamlit that is the page script being run (Streamlit makes it `__main__`),
    and under AppTest too: the worker would draw a page and start a second job manager.
    The worker needs nothing from `__main__`, so it is hidden for the moment of start.
    """
    with _main_lock:
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            process.start()
        finally:
            sys.modules["__main__"] = main
