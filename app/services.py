"""Process-wide resources shared by every user of the server: the job manager and the
datasets. Per-user state never lives here."""

from __future__ import annotations

import os
import threading

from core.data import DataRequest, TensorData, load
from core.jobs import LocalJobManager

_lock = threading.Lock()
_manager: LocalJobManager | None = None


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
            _manager = LocalJobManager(max_running=max(1, running), max_per_owner=max(1, per_owner))
        return _manager


def dataset(request: DataRequest) -> TensorData:
    """Loaded once per process (core.data caches), downloaded on first use when online."""
    return load(request, download=request.name in ("mnist", "fashion_mnist", "cifar10"))
