"""What the pages read of a stored run, in the shapes the in-memory backend gives them:
`StoredLog` (a RunLog's `snapshot()` and `version`, read from the store, new steps only)
and arm names that can name files while the pages keep the names users gave.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import threading

from core.spec import NetSpec
from core.store import RunStore
from core.telemetry import Snapshot

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def safe_arm_ids(names) -> dict[str, str]:
    """display name -> an id the store accepts (`[A-Za-z0-9_-]{1,40}`), unique per run:
    'ResNet-20 narrow' -> 'ResNet-20_narrow'; a clash or an empty result gets a number."""
    ids: dict[str, str] = {}
    for i, name in enumerate(names):
        base = _UNSAFE.sub("_", name).strip("_")[:36] or f"arm{i}"
        safe, n = base, 2
        while safe in ids.values():
            safe, n = f"{base}_{n}", n + 1
        ids[name] = safe
    return ids


@functools.lru_cache(maxsize=512)
def _compact(spec: NetSpec) -> str:
    """A spec's one-line JSON, written once per spec: a page asks on every refresh."""
    return spec.to_json(indent=None)


class StoredLog:
    """One arm's records as the store has them, read like a RunLog by the pages.

    Each `snapshot()` reads only the steps after the last one it saw (evaluations and
    events, which are few, in full), so a page polling a long run does not reread it.
    """

    def __init__(self, store: RunStore, run_id: str, arm: str, meta: dict | None = None):
        self.store, self.run_id, self.arm = store, run_id, arm
        self.meta = dict(meta or {})
        self._lock = threading.Lock()
        self._last: Snapshot | None = None

    def snapshot(self) -> Snapshot:
        with self._lock:
            last = self._last
            after = last.steps[-1].step if last is not None and last.steps else 0
            new = self.store.snapshot(self.run_id, self.arm, after=after)
            steps = (last.steps if last is not None else ()) + new.steps
            spec = self.store.specs(self.run_id).get(self.arm, (None, None))
            meta = dict(self.meta, **new.meta)
            if spec[1] is not None:
                meta["spec"] = _compact(spec[1])
            if spec[0] is not None:
                meta["spec_start"] = _compact(spec[0])
            version = len(steps) + len(new.evals) + len(new.events) + len(meta.get("spec", ""))
            self._last = dataclasses.replace(new, steps=steps, meta=meta, version=version)
            return self._last

    @property
    def version(self) -> int:
        return self.snapshot().version
