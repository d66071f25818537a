"""Process-wide resources shared by every user of the server: the job manager and the
datasets. Per-user state never lives here."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from core.config import TrainConfig
from core.data import DataError, DataRequest, TensorData, data_root, load
from core.experiments import fit_to_data
from core.jobs import Arm, LocalJobManager
from core.spec import NetSpec

_lock = threading.Lock()
_manager: LocalJobManager | None = None


# Left to the server itself (Streamlit, websockets, building charts): a run that takes
# every core makes its own threads wait on them, 4x slower on 2 cores (bench/app_vs_bench.py).
SERVER_CORES = 1


def threads_per_job(running: int) -> int:
    """Torch threads of each of `running` runs: the cores less SERVER_CORES, shared."""
    return max(1, ((os.cpu_count() or 1) - SERVER_CORES) // max(1, running))


def job_manager() -> LocalJobManager:
    """One manager for the whole server (a module global: every session, and tests, get
    the same one). RESNET_EXPLORER_MAX_RUNNING sets how many runs train at once (default
    1: the GPU or the CPU, fully used); the rest queue. RESNET_EXPLORER_MAX_PER_USER caps
    one browser's waiting and running runs (default 3)."""
    global _manager
    with _lock:
        if _manager is None:
            running = int(os.environ.get("RESNET_EXPLORER_MAX_RUNNING", "1"))
            per_owner = int(os.environ.get("RESNET_EXPLORER_MAX_PER_USER", "3"))
            _manager = LocalJobManager(
                max_running=max(1, running),
                max_per_owner=max(1, per_owner),
                threads_per_job=threads_per_job(running),
            )
        return _manager


_store = None


def store():
    """The run store of this server (SQLite + safetensors under the data directory)."""
    global _store
    with _lock:
        if _store is None:
            from core.store import RunStore

            _store = RunStore(data_root())
        return _store


def dataset(request: DataRequest) -> TensorData:
    """Loaded once per process (core.data caches), downloaded on first use when online."""
    return load(request, download=request.name in ("mnist", "fashion_mnist", "cifar10"))


@dataclass(frozen=True)
class Started:
    """What `submit` did: the new run's id, or why it could not start (a readable line)."""

    job: str | None = None
    error: str | None = None


def submit(
    owner: str,
    name: str,
    specs: Sequence[NetSpec],
    request: DataRequest | None,
    config: TrainConfig,
) -> Started:
    """Load the data, fit every net to it, check the settings against it, and queue the run.

    The one place a page starts a run, and the one place its refusals are caught: every
    user error is a ValueError (`ExplainedError` and the older DataError, SpecError,
    ConfigError, JobError), and its message is written to be shown as it is.

    Args:
        request: the data; None when the page has none to offer yet (no zip uploaded).
    """
    try:
        if request is None:
            raise DataError("upload a zip of class folders first")
        data = dataset(request)
        arms = [Arm(spec.name, fit_to_data(spec, data)) for spec in specs]
        config.validate(len(data.y_train))
        return Started(job=job_manager().submit(owner, name, arms, data, config))
    except ValueError as e:  # ExplainedError's base: every refusal a user can cause
        return Started(error=str(e))
