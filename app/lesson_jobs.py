"""A lesson's experiment in the shared job manager: never in the page's script thread.

`start` plans the lesson (core.lesson_runs), submits one job per group of arms that share
settings and data (`job_groups`), and, for an arm whose skips switch on mid-run (lesson
8), sends the skip command with the step it waits for (`Command.at_step`): the run
applies it exactly there, in every backend, with no thread watching. `outcome` reads
the jobs back and checks the lesson's claims on their logs, so the page never says what
the run did not show. Lessons without training (shapes, shortcut)
are computed here directly: they take milliseconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
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
            if arm.skips_on_at is not None:  # lesson 8: skips on mid-run, at that step
                switch = Command("skip", on=True, arm=arm.label, at_step=arm.skips_on_at)
                services.job_manager().send(result.job, owner, switch)
    return Started(tuple(jobs), None, time.time())


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
