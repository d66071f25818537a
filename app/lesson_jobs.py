"""A lesson's experiment in the shared job manager: never in the page's script thread.

`start` plans the lesson (core.lesson_runs), submits one job per group of arms that share
settings and data (`job_groups`), and, for an arm whose skips switch on mid-run (lesson
8), sends the skip command with the step it waits for (`Command.at_step`): the run
applies it exactly there, in every backend, with no thread watching. `outcome` reads
the jobs back and checks the lesson's claims on their logs, so the page never says what
the run did not show. Lessons without training (shapes, shortcut)
are computed here directly: they take milliseconds.

A lesson with a transfer stage (lesson 9, `core.lesson_transfer`) also submits stage 1,
the source net, at the start; `advance` submits stage 2, the race of its copy against a
fresh net, once stage 1 has finished (the page calls it on every poll; it submits once).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from dataclasses import dataclass

from app import services
from core.jobs import ACTIVE, FINISHED, Command, JobError
from core.lesson_runs import (
    ArmPlan,
    ClaimResult,
    check_claims,
    check_shapes,
    check_shortcut,
    job_groups,
    plan_lesson,
)
from core.lesson_transfer import SOURCE, race_arms
from core.lessons import Lesson

SIZE_ENV = "RESNET_EXPLORER_LESSON_SIZE"  # "tiny": the test suite's size (the `test:` line)
TRANSFER = "transfer"  # stage 2's job name ends so (stage 1's: SOURCE, "source")


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
    stage: int = 0  # a transfer's stage in progress: 1 (the source net), 2 (the race)


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
    if lesson.transfer is not None:  # stage 1 trains beside the arms; `advance` does 2
        stage = lesson.transfer
        result = services.submit(
            owner,
            job_name(lesson, SOURCE),
            [stage.source_spec()],
            stage.source_request(),
            stage.config(stage.source_steps),
        )
        if result.error is not None:
            return Started(tuple(jobs), result.error, time.time())
        jobs.append(result.job)
    return Started(tuple(jobs), None, time.time())


def job_name(lesson: Lesson, stage: str) -> str:
    """The name of a transfer stage's job (SOURCE or TRANSFER): found by it later."""
    return f"{lesson.key}: {stage}"


def advance(lesson: Lesson, jobs: tuple[str, ...], owner: str) -> tuple[tuple[str, ...], str]:
    """The jobs with stage 2 of a transfer added once stage 1 has finished, and why not
    ('' when nothing was due or it was submitted). Submits once: later calls find it."""
    stage = lesson.transfer
    if stage is None:
        return jobs, ""
    mgr = services.job_manager()
    infos = {}
    for job in jobs:
        with contextlib.suppress(JobError):  # a job gone is reported by `outcome`
            info = mgr.info(job, owner)
            infos[info.name] = info
    source = infos.get(job_name(lesson, SOURCE))
    if source is None or source.status != FINISHED or job_name(lesson, TRANSFER) in infos:
        return jobs, ""
    try:  # the trained source net, copied: the race's transferred arm starts from it
        net, _data = mgr.copy_model(source.id, owner, SOURCE)
        arms = race_arms(stage, net, services.dataset(stage.target_request()))
    except ValueError as e:  # a refusal written for the user (TransferError, JobError)
        return jobs, str(e)
    result = services.submit(
        owner,
        job_name(lesson, TRANSFER),
        list(arms),
        stage.target_request(),
        stage.config(stage.steps),
    )
    if result.error is not None:
        return jobs, result.error
    return (*jobs, result.job), ""


def outcome(lesson: Lesson, jobs: tuple[str, ...], owner: str) -> Outcome:
    """The lesson's state from its jobs; the claims once every job has ended."""
    if lesson.kind == "shapes":
        return Outcome(False, tuple(check_shapes(lesson)))
    if lesson.kind == "shortcut":
        return Outcome(False, tuple(check_shortcut(lesson)))
    mgr = services.job_manager()
    logs, problems, running, step, total, names = {}, [], False, 0, 0, set()
    for job in jobs:
        try:
            info = mgr.info(job, owner)
            job_logs = mgr.logs(job, owner)
        except JobError as e:
            problems.append(str(e))
            continue
        running |= info.status in ACTIVE
        names.add(info.name)
        step, total = step + info.step, total + info.total_steps
        if info.status in ("failed", "diverged", "stopped", "cancelled"):
            problems.append(f"{info.name}: {info.status}: {info.message}")
        logs.update({arm: log.snapshot() for arm, log in job_logs.items()})
    stage = 0
    if lesson.transfer is not None:
        stage = 2 if job_name(lesson, TRANSFER) in names else 1
        running |= stage == 1 and not problems  # stage 2 is still to come
    if running or not jobs:
        return Outcome(True, (), logs, tuple(problems), step, total, stage)
    claims = check_claims(lesson.claims, plan(lesson), logs)
    return Outcome(False, tuple(claims), logs, tuple(problems), step, total, stage)


def stop(jobs: tuple[str, ...], owner: str) -> None:
    for job in jobs:
        with contextlib.suppress(JobError):  # already gone
            services.job_manager().cancel(job, owner)
