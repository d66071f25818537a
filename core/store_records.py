"""How runs and records look as rows of the run store, what its errors say, and the
per-owner caps. Shared by `core.store` (reading) and `core.store_writer` (writing).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.config import TrainConfig
from core.errors import ExplainedError
from core.spec import NetSpec
from core.telemetry import StepRecord

MAX_RUNS_ENV = "RESNET_EXPLORER_MAX_RUNS_PER_USER"
MAX_BYTES_ENV = "RESNET_EXPLORER_MAX_BYTES_PER_USER"
# A class of 30 keeps a term of runs: 200 runs each, and 1 GiB each (a ResNet-56 twin
# run with checkpoints and every step logged for 64k steps is about 150 MB).
DEFAULT_MAX_RUNS = 200
DEFAULT_MAX_BYTES = 1024**3
ROW_BYTES = 64  # keys and scalars of one stored row, for the byte count


class StoreError(ExplainedError):
    """A request the store refuses: a run that is not there, an owner over the cap."""


class StoreFullError(StoreError):
    """An owner has as many runs or bytes stored as this server allows."""


@dataclass(frozen=True)
class RunInfo:
    """One stored run as the Runs page lists it."""

    id: str
    owner: str
    name: str
    status: str
    created: float
    ended: float | None
    message: str
    config_json: str
    data: dict
    device: str
    arms: tuple[str, ...]
    step: int
    total_steps: int
    bytes: int
    best_val_accuracy: float | None
    results: dict = field(default_factory=dict)

    @property
    def config(self) -> TrainConfig:
        return TrainConfig.from_json(self.config_json)


INFO_QUERY = (
    "SELECT r.id, r.owner, r.name, r.status, r.created, r.ended, r.message, r.config, "
    "r.data, r.device, (SELECT group_concat(arm, char(31)) FROM "
    "(SELECT arm FROM arms a WHERE a.run_id = r.id ORDER BY position)), r.step, "
    "r.total_steps, r.db_bytes + r.file_bytes, "
    "(SELECT MAX(accuracy) FROM evals e WHERE e.run_id = r.id), r.results FROM runs r"
)


STEP_COLUMNS = (
    "step, epoch, loss, accuracy, lr, images_per_s, seconds, grad_norms, weight_norms, "
    "update_ratios"
)


def floats_to_blob(values) -> bytes:
    """Per-layer numbers as float64 bytes: exact, 8 bytes a number."""
    return np.asarray(values, dtype=np.float64).tobytes()


def blob_to_floats(blob: bytes) -> tuple[float, ...]:
    return tuple(np.frombuffer(blob, dtype=np.float64).tolist())


def step_row(run_id: str, arm: str, r: StepRecord) -> tuple:
    """A StepRecord as the values of a `steps` row, in table order."""
    blobs = (r.grad_norms, r.weight_norms, r.update_ratios)
    scalars = (r.step, r.epoch, r.loss, r.accuracy, r.lr, r.images_per_s, r.seconds)
    return (run_id, arm, *scalars, *(floats_to_blob(b) for b in blobs))


def step_from_row(r) -> StepRecord:
    """The StepRecord of a row selected with STEP_COLUMNS."""
    g, w, u = (blob_to_floats(b) for b in r[7:10])
    return StepRecord(
        step=r[0],
        epoch=r[1],
        loss=r[2],
        accuracy=r[3],
        lr=r[4],
        images_per_s=r[5],
        seconds=r[6],
        grad_norms=g,
        weight_norms=w,
        update_ratios=u,
    )


def info_from_row(r) -> RunInfo:
    return RunInfo(
        id=r[0],
        owner=r[1],
        name=r[2],
        status=r[3],
        created=r[4],
        ended=r[5],
        message=r[6],
        config_json=r[7],
        data=json.loads(r[8] or "{}"),
        device=r[9],
        arms=tuple(r[10].split("\x1f")) if r[10] else (),
        step=r[11],
        total_steps=r[12],
        bytes=r[13],
        best_val_accuracy=r[14],
        results=json.loads(r[15] or "{}"),
    )


def env_limit(name: str, default: int) -> int:
    """A positive whole number from the environment, or `default`."""
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip().isdigit() and int(raw) > 0 else default


def quota_refusal(runs: int, used: int) -> StoreFullError | None:
    """The refusal for an owner with `runs` runs and `used` bytes stored, or None."""
    max_runs = env_limit(MAX_RUNS_ENV, DEFAULT_MAX_RUNS)
    max_bytes = env_limit(MAX_BYTES_ENV, DEFAULT_MAX_BYTES)
    fix = "delete old runs on the Runs page, then start this one again"
    if runs >= max_runs:
        return StoreFullError(
            f"you have {runs} stored runs, the most this server keeps for one person", fix=fix
        )
    if used >= max_bytes:
        return StoreFullError(
            f"your stored runs take {used / 2**20:,.0f} MB, the most this server keeps "
            f"for one person ({max_bytes / 2**20:,.0f} MB)",
            fix=fix,
        )
    return None


def explain(error: Exception, path: Path) -> str:
    """A reason a teacher can read: no write access, a full disk, a folder in the way."""
    text = str(error).lower()
    if path.is_dir():
        return f"{path} is a folder, not a file; remove or rename that folder"
    if "full" in text or getattr(error, "errno", None) == 28:
        return "the disk is full; free some space"
    if "readonly" in text or "read-only" in text or isinstance(error, PermissionError):
        return f"the data folder {path.parent} cannot be written; make it writable"
    if "unable to open" in text:
        return f"the data folder {path.parent} cannot be written; make it writable"
    return f"the run database cannot be written ({error})"


@functools.lru_cache(maxsize=512)
def stored_spec(text: str) -> NetSpec | None:
    """A stored spec's JSON parsed, once per distinct text: the pages ask for a run's
    specs on every refresh, and a NetSpec is frozen, so one parse serves them all."""
    return NetSpec.from_json(text) if text else None
