"""What the pages read of a stored run, in the shapes the in-memory backend gives them:
`StoredLog` (a RunLog's `snapshot()` and `version`, read from the store, new steps only)
and arm names that can name files while the pages keep the names users gave.
"""

from __future__ import annotations

import dataclasses
import re
import threading

from core.downsample import Buckets
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


class StoredLog:
    """One arm's records as the store has them, read like a RunLog by the pages.

    Each `snapshot()` reads only the steps after the last one it saw (evaluations and
    events, which are few, in full), so a page polling a long run does not reread it;
    `chart_snapshot` keeps no steps, only their buckets (core.downsample).
    """

    def __init__(self, store: RunStore, run_id: str, arm: str, meta: dict | None = None):
        self.store, self.run_id, self.arm = store, run_id, arm
        self.meta = dict(meta or {})
        self._lock = threading.Lock()
        self._last: Snapshot | None = None
        self._charts: dict[int, Buckets] = {}  # max_points -> the steps so far, bucketed
        self._raw_specs: tuple = (None, None)
        self._compact_specs: tuple[str | None, str | None] = (None, None)

    def _read(self, after: int) -> tuple[Snapshot, dict]:
        """The steps after step `after`, every evaluation and event, and the meta."""
        new = self.store.snapshot(self.run_id, self.arm, after=after)
        start, now = self._specs()
        meta = dict(self.meta, **new.meta)
        if now is not None:
            meta["spec"] = now
        if start is not None:
            meta["spec_start"] = start
        return new, meta

    def _specs(self) -> tuple[str | None, str | None]:
        """The arm's spec at the start and now, as compact JSON; parsed again only when
        the stored text changed (a live skip toggle), not on every poll."""
        row = (
            self.store.connect()
            .execute(
                "SELECT spec_start, spec_now FROM arms WHERE run_id = ? AND arm = ?",
                (self.run_id, self.arm),
            )
            .fetchone()
        )
        raw = tuple(row) if row else (None, None)
        if raw != self._raw_specs:
            compact = (NetSpec.from_json(t).to_json(indent=None) if t else None for t in raw)
            self._raw_specs, self._compact_specs = raw, tuple(compact)
        return self._compact_specs

    @staticmethod
    def _version(steps: int, new: Snapshot, meta: dict) -> int:
        return steps + len(new.evals) + len(new.events) + len(meta.get("spec", ""))

    def snapshot(self) -> Snapshot:
        with self._lock:
            last = self._last
            after = last.steps[-1].step if last is not None and last.steps else 0
            new, meta = self._read(after)
            steps = (last.steps if last is not None else ()) + new.steps
            version = self._version(len(steps), new, meta)
            self._last = dataclasses.replace(new, steps=steps, meta=meta, version=version)
            return self._last

    def chart_snapshot(self, max_points: int) -> Snapshot:
        """As `RunLog.chart_snapshot`: downsampled to at most `max_points` steps, reading
        only the rows stored since the last call and folding them into its buckets."""
        with self._lock:
            buckets = self._charts.setdefault(max_points, Buckets(max_points))
            new, meta = self._read(buckets.last.step if buckets.last is not None else 0)
            buckets.extend(new.steps)
            version = self._version(buckets.count, new, meta)
            steps = buckets.records()
            return dataclasses.replace(
                new, steps=steps, meta=meta, version=version, latest=buckets.last
            )

    @property
    def version(self) -> int:
        return self.snapshot().version
