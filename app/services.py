"""Process-wide resources shared by every user of the server: the job manager, the run
store and the datasets. Per-user state never lives here.

Runs train in worker processes (core.workers.ProcessJobManager) over the run store in
the data directory ($RESNET_EXPLORER_DATA), so a run survives a restart and cannot stall
or kill the server. RESNET_EXPLORER_BACKEND=threads trains on threads in this process
instead (core.jobs.LocalJobManager: nothing is stored), and so does a store that cannot
write to its folder (a worker process could not read an in-memory database).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from app.i18n import N_, tr
from core.config import TrainConfig
from core.data import DataError, DataRequest, TensorData, data_root, load
from core.experiments import fit_to_data
from core.jobs import Arm, JobManager, LocalJobManager
from core.scheduling import Policy
from core.spec import NetSpec
from core.store import RunStore
from core.workers import ProcessJobManager

BACKEND_ENV = "RESNET_EXPLORER_BACKEND"  # "processes" (default), "threads" or "ray"
# Seconds a paused run keeps its training place before a waiting run may take it.
PAUSE_RELEASE_ENV = "RESNET_EXPLORER_PAUSE_RELEASE_S"
_lock = threading.Lock()
_manager: JobManager | None = None
_store: RunStore | None = None


# Left to the server itself (Streamlit, websockets, building charts): a run that takes
# every core makes its own threads wait on them, 4x slower on 2 cores (bench/app_vs_bench.py).
SERVER_CORES = 1


def threads_per_job(running: int) -> int:
    """Torch threads of each of `running` runs: the cores less SERVER_CORES, shared."""
    return max(1, ((os.cpu_count() or 1) - SERVER_CORES) // max(1, running))


def job_manager() -> JobManager:
    """One manager for the whole server (a module global: every session, and tests, get
    the same one). RESNET_EXPLORER_MAX_RUNNING sets how many runs train at once (default
    1: the GPU or the CPU, fully used); the rest queue. RESNET_EXPLORER_MAX_PER_USER caps
    one browser's waiting and running runs (default 3). RESNET_EXPLORER_PAUSE_RELEASE_S:
    how long a paused run keeps its place (default 180 s). RESNET_EXPLORER_BACKEND=threads
    trains in this process instead of worker processes (for debugging); =ray trains each
    run as a Ray actor on the cluster at $RAY_ADDRESS (unset: a local Ray instance), the
    store staying here (core.ray_jobs). The rest of the teacher's limits (GPU share, per
    address, steps, minutes): `Policy.from_env`."""
    global _manager, _store
    with _lock:
        if _manager is None:
            running = max(1, int(os.environ.get("RESNET_EXPLORER_MAX_RUNNING", "1")))
            per_owner = max(1, int(os.environ.get("RESNET_EXPLORER_MAX_PER_USER", "3")))
            limits = {
                "max_running": running,
                "max_per_owner": per_owner,
                "threads_per_job": threads_per_job(running),
                "pause_release_s": max(0.0, float(os.environ.get(PAUSE_RELEASE_ENV, "180"))),
                "policy": Policy.from_env(),
            }
            backend = os.environ.get(BACKEND_ENV, "").strip().lower()
            if backend == "ray":  # imports Ray only when chosen; says how to install it
                from core.ray_jobs import RayJobManager

                _manager = RayJobManager(**limits)
                _store = _store or _manager.store
            elif backend != "threads":
                manager = ProcessJobManager(**limits)  # the store in the data directory
                if manager.store.saving:
                    _manager = manager
                    _store = _store or manager.store
            if _manager is None:
                _manager = LocalJobManager(**limits)
        return _manager


def store() -> RunStore:
    """The run store of this server (SQLite + safetensors under the data directory): the
    process backend's own, or one beside the thread backend. Its `message` says what to
    tell users (a database moved aside, nothing being saved)."""
    global _store
    job_manager()
    with _lock:
        if _store is None:
            _store = RunStore(data_root())
        return _store


def dataset(request: DataRequest) -> TensorData:
    """Loaded once per process (core.data caches), downloaded on first use when online."""
    return load(request, download=request.name in ("mnist", "fashion_mnist", "cifar10"))


def client_address() -> str | None:
    """The browser's network address, for the caps per address that a new `?me=` token
    does not reset. None when unknown: outside a page, and for localhost (Streamlit's
    `st.context.ip_address`). Behind a reverse proxy every browser has the proxy's
    address: turn the cap off there (RESNET_EXPLORER_MAX_PER_ADDRESS=0)."""
    try:
        import streamlit as st

        return st.context.ip_address
    except Exception:  # no script run (a test, a bench): nothing to count by
        return None


@dataclass(frozen=True)
class Started:
    """What `submit` did: the new run's id, or why it could not start (a readable line)."""

    job: str | None = None
    error: str | None = None


def submit(
    owner: str,
    name: str,
    specs: Sequence[NetSpec | Arm],
    request: DataRequest | None,
    config: TrainConfig,
    client: str | None = None,
) -> Started:
    """Load the data, fit every net to it, check the settings against it, and queue the run.

    The one place a page starts a run, and the one place its refusals are caught: every
    user error is a ValueError (`ExplainedError` and the older DataError, SpecError,
    ConfigError, JobError), and its message is written to be shown as it is.

    Args:
        request: the data; None when the page has none to offer yet (no zip uploaded).
        client: the browser's address; default: this page's (`client_address`).
        specs: the nets, each fitted to the data here; an Arm (a transfer's, with initial
            weights, `core.transfer.transfer_race`) is taken as it is.
    """
    try:
        if request is None:
            raise DataError(N_("upload a zip of class folders first"))
        data = dataset(request)
        arms = [s if isinstance(s, Arm) else Arm(s.name, fit_to_data(s, data)) for s in specs]
        config.validate(len(data.y_train))
        mgr = job_manager()
        where = {"client": client if client is not None else client_address()}
        if isinstance(mgr, ProcessJobManager):  # the worker loads the data itself
            where["request"] = request
        return Started(job=mgr.submit(owner, name, arms, data, config, **where))
    except ValueError as e:  # ExplainedError's base: every refusal a user can cause
        return Started(error=tr(e))  # in the reader's language
