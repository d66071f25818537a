"""The Runs page's list: this browser's runs from the job manager and the run store, as
one row each, and the table the page shows. No widgets here.

The job manager lists the runs it trains; the store keeps runs across restarts, and the
imported ones. A run in both is one row (the manager's view of it, the store's dataset and
best accuracy); a run only in the store (imported, or from before a restart while the
backend does not list stored runs) is a row marked `managed=False`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from app.choices import short_title, status_word
from app.i18n import _, number
from core.jobs import ACTIVE, JobError
from core.store import RunInfo, RunStore

ALL = "all"
NO_VALUE = "—"


@dataclass(frozen=True)
class RunRow:
    """One run as the Runs page lists it."""

    id: str
    name: str
    status: str
    message: str
    dataset: str
    step: int
    total_steps: int
    best_accuracy: float | None
    created: float
    arms: tuple[str, ...]
    config_json: str
    managed: bool  # the job manager lists it: Train, Explain, Compare and Resume work on it
    stored: bool  # the run store keeps it: export and share links work on it

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


def dataset_title(info: RunInfo | None) -> str:
    name = info.data.get("name") if info is not None else None
    if not isinstance(name, str) or not name:
        return NO_VALUE
    return short_title(name)


def _best_logged(mgr, owner: str, run_id: str) -> float | None:
    """The best validation accuracy in the manager's logs, over every network."""
    try:
        logs = mgr.logs(run_id, owner)
    except JobError:
        return None
    accuracies = [e.accuracy for log in logs.values() for e in log.snapshot().evals]
    return max(accuracies, default=None)


def _from_job(mgr, owner: str, info, stored: RunInfo | None) -> RunRow:
    best = stored.best_val_accuracy if stored is not None else None
    if best is None:
        best = _best_logged(mgr, owner, info.id)
    return RunRow(
        id=info.id,
        name=info.name,
        status=info.status,
        message=info.message,
        dataset=dataset_title(stored),
        step=info.step,
        total_steps=info.total_steps,
        best_accuracy=best,
        created=info.created,
        arms=tuple(info.arms),
        config_json=info.config.to_json(),
        managed=True,
        stored=stored is not None,
    )


def _from_store(info: RunInfo) -> RunRow:
    return RunRow(
        id=info.id,
        name=info.name,
        status=info.status,
        message=info.message,
        dataset=dataset_title(info),
        step=info.step,
        total_steps=info.total_steps,
        best_accuracy=info.best_val_accuracy,
        created=info.created,
        arms=info.arms,
        config_json=info.config_json,
        managed=False,
        stored=True,
    )


def gather(mgr, store: RunStore, owner: str) -> list[RunRow]:
    """Every run of `owner`, newest first."""
    stored = {i.id: i for i in store.list_runs(owner)}
    rows = [_from_job(mgr, owner, i, stored.pop(i.id, None)) for i in mgr.list(owner)]
    rows += [_from_store(i) for i in stored.values()]
    return sorted(rows, key=lambda r: r.created, reverse=True)


def statuses(rows: list[RunRow]) -> list[str]:
    """The filter's choices: all, then each status there is, in a fixed order."""
    return [ALL, *sorted({r.status for r in rows})]


def only(rows: list[RunRow], status: str) -> list[RunRow]:
    return list(rows) if status == ALL else [r for r in rows if r.status == status]


def table(rows: list[RunRow]) -> list[dict]:
    """The rows of the page's table."""
    return [
        {
            _("run"): r.id,
            _("name"): r.name,
            _("status"): status_word(r.status),
            _("dataset"): r.dataset,
            _("steps"): f"{number(r.step)} / {number(r.total_steps)}",
            _("best val accuracy"): (
                NO_VALUE if r.best_accuracy is None else number(r.best_accuracy, 1, percent=True)
            ),
            _("networks"): ", ".join(r.arms),
            _("date"): time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created)),
        }
        for r in rows
    ]


def oldest_ended(rows: list[RunRow], n: int = 5) -> list[RunRow]:
    """The `n` oldest runs that are not training: what to offer to delete at the cap."""
    ended = [r for r in rows if not r.active]
    return sorted(ended, key=lambda r: r.created)[:n]
