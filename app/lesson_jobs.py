"""A lesson's experiment in the shared job manager: never in the page's script thread.

`start` plans the lesson (core.lesson_runs), submits one job per group of arms that share
settings and data (`job_groups`), and, for an arm whose skips switch on mid-run (lesson
8), starts a small watcher thread that sends the skip command when the run reaches that
step. `outcome` reads the jobs back and checks the lesson's claims on their logs, so the
page never says what the run did not show. Lessons without training (shapes, shortcut)
are computed here directly: they take milliseconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from dataclasses import dataclass

from app import services
from core.jobs import ACTIVE, Command, JobError
from core.lesson_runs import (
    ArmPlan,
    ClaimResult,
    check_claims,
    check_shapes,
    check_shortcut,
    job_groups,
    plan_lesson,
)
from core.lessons import Lesson

SIZE_ENV = "RESNET_EXPLORER_LESSON_SIZE"  # "tiny": the test suite's size (the `test:` line)
WATCH_EVERY_S = 0.005  # the watcher looks at the step count this often


def tiny() -> bool:
    return os.environ.get(SIZE_ENV, "").strip().lower() == "tiny"


@dataclass(frozen=True)
class Started:
    jobs: tuple[str, ...] = ()
    error: str | None = None
    started: float = 0.0


@dataclass(frozen=True)
class Outcome:
    """Where a lesson's run stands: still running, or ended with its claims checked."""

    running: bool
    claims: tuple[ClaimResult, ...] = ()
    snapshots: dict = dataclasses.field(default_factory=dict)  # arm label -> Snapshot
    problems: tuple[str, ...] = ()  # a failed or stopped job's message
    step: int = 0
    total: int = 0


def plan(lesson: Lesson) -> list[ArmPlan]:
    return plan_lesson(lesson, tiny=tiny())


def start(lesson: Lesson, owner: str) -> Started:
    """Submit the lesson's jobs; a refusal (queue full, limit per user) comes back as text."""
    try:
        arms = plan(lesson)
    except ValueError as e:
        return Started(error=str(e))
    jobs = []
    for config, data, group in job_groups(arms):
        specs = [dataclasses.replace(a.spec, name=a.label) for a in group]
        name = f"{lesson.key}: {', '.join(a.label for a in group)}"
        result = services.submit(owner, name, specs, data, config)
        if result.error is not None:
            return Started(tuple(jobs), result.error, time.time())
        jobs.append(result.job)
        for arm in group:
            if arm.skips_on_at is not None:
                _watch(result.job, owner, arm.label, arm.skips_on_at)
    return Started(tuple(jobs), None, time.time())


def _watch(job: str, owner: str, arm: str, at: int) -> None:
    """Send `skip on, all blocks` to `arm` once the job has taken `at` steps.

    The job manager has no command scheduled for a step, so a thread polls the step count
    (a step of a deep net takes tens of milliseconds; the poll, 5 ms): the switch lands
    at step `at` or the one after, and the log's event records the step it really did.
    """

    def loop() -> None:
        mgr = services.job_manager()
        while True:
            try:
                info = mgr.info(job, owner)
                if info.status not in ACTIVE:
                    return
                if info.step >= at:
                    mgr.send(job, owner, Command("skip", on=True, arm=arm))
                    return
            except JobError:
                return
            time.sleep(WATCH_EVERY_S)

    threading.Thread(target=loop, name=f"lesson-skip-{job}", daemon=True).start()


def outcome(lesson: Lesson, jobs: tuple[str, ...], owner: str) -> Outcome:
    """The lesson's state from its jobs; the claims once every job has ended."""
    if lesson.kind == "shapes":
        return Outcome(False, tuple(check_shapes(lesson)))
    if lesson.kind == "shortcut":
        return Outcome(False, tuple(check_shortcut(lesson)))
    mgr = services.job_manager()
    logs, problems, running, step, total = {}, [], False, 0, 0
    for job in jobs:
        try:
            info = mgr.info(job, owner)
            job_logs = mgr.logs(job, owner)
        except JobError as e:
            problems.append(str(e))
            continue
        running |= info.status in ACTIVE
        step, total = step + info.step, total + info.total_steps
        if info.status in ("failed", "diverged", "stopped", "cancelled"):
            problems.append(f"{info.name}: {info.status}: {info.message}")
        logs.update({arm: log.snapshot() for arm, log in job_logs.items()})
    if running or not jobs:
        return Outcome(True, (), logs, tuple(problems), step, total)
    claims = check_claims(lesson.claims, plan(lesson), logs)
    return Outcome(False, tuple(claims), logs, tuple(problems), step, total)


def stop(jobs: tuple[str, ...], owner: str) -> None:
    for job in jobs:
        with contextlib.suppress(JobError):  # already gone
            services.job_manager().cancel(job, owner)
