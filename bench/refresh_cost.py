"""What one live refresh of a student's charts costs the server, at 100, 20,000 and
300,000 logged steps: CPU seconds and the bytes of the figures sent, against step 100.

The logs are built through the real logging API (a RunLog for the thread backend; a
RunWriter into SQLite, read back by a StoredLog, for the process backend), with the
layers of the nets the app trains. One refresh is what the live panel's two fragments do
after a few new steps: each arm's chart snapshot (app.live_figures.MAX_POINTS), the
training time and the verdict for the status line, the figures rebuilt where their data
changed (app.live_figures.LiveFigures) and serialised as st.plotly_chart does
(plotly.io.to_json). The first refresh of a page opened on a long run (it folds in the
whole log once) is printed apart. Then a CSV download of 300,000 steps: the Runs page's
zip of tables (app.exports.arm_zip) and the run export's metrics file
(core.export.metrics_csv), of the stored log (ResNet-56's 29 rows a series) and of a
ResNet-8-sized log (5 rows) as long.

Targets: at most 20 ms of CPU and 100 kB a refresh at any length; the CSV in 2 s.
Run: .venv/bin/python bench/refresh_cost.py [--arms 1|4] [--lengths 100 20000 300000]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import _util
import numpy as np
import plotly.io
import pyarrow.csv  # noqa: F401  imported before any timing: a one-off of the server's

from app import exports
from app.live_figures import MAX_POINTS, LiveFigures
from core import experiments
from core.config import TrainConfig
from core.export import metrics_csv
from core.model import build
from core.store import RunStore
from core.store_view import StoredLog
from core.store_writer import RunWriter
from core.telemetry import RunLog, StepRecord
from core.training import layer_names

CPU_MS, KB, CSV_S = 20.0, 100.0, 2.0
NEW_STEPS = 10  # steps logged between two refreshes (about 5 s of a small run)
ROUNDS = 5


def nets(arms: int) -> dict[str, tuple[str, ...]]:
    """arm -> layer names: ResNet-56 alone, or the degradation experiment's four nets."""
    specs = experiments.degradation_nets()
    chosen = specs[-1:] if arms == 1 else specs
    return {spec.name: layer_names(build(spec, seed=0)) for spec in chosen}


def record(step: int, n: int, rng: np.random.Generator) -> StepRecord:
    norms = rng.lognormal(-3, 1, size=(3, n))
    return StepRecord(
        step=step,
        epoch=step / 400,
        loss=2.3 / (1 + step / 1000) + float(rng.random()) * 0.1,
        accuracy=min(1.0, step / 20_000 + float(rng.random()) * 0.1),
        lr=0.1,
        grad_norms=tuple(norms[0].tolist()),
        weight_norms=tuple(norms[1].tolist()),
        update_ratios=tuple(norms[2].tolist()),
        images_per_s=500.0,
        seconds=step * 0.2,
    )


class Logs:
    """The arms' logs on one backend, and a way to log more steps to all of them."""

    def __init__(self, backend: str, layers: dict[str, tuple[str, ...]], folder: str):
        self.rng, self.step = np.random.default_rng(0), 0
        self.layers = layers
        if backend == "threads":
            self.writing = {arm: RunLog(names) for arm, names in layers.items()}
            self.reading, self.writer = self.writing, None
            return
        self.store = RunStore(folder)
        cfg = TrainConfig(steps=10**6)
        arms = dict(zip(layers, experiments.degradation_nets()[-len(layers) :], strict=True))
        self.run = self.store.create_run("bench", "refresh", arms=arms, config=cfg)
        self.writer = RunWriter(self.store, self.run, every_s=3600, every_n=10**9)
        self.writing = {arm: self.writer.log(arm, names) for arm, names in layers.items()}
        self.reading = {arm: StoredLog(self.store, self.run, arm) for arm in layers}

    def log_until(self, step: int) -> None:
        while self.step < step:
            self.step += 1
            for arm, log in self.writing.items():
                log.append_step(record(self.step, len(self.layers[arm]), self.rng))
            if self.writer is not None and self.step % 20_000 == 0:
                self.writer.flush()
        if self.writer is not None:
            self.writer.flush()


def status(logs: dict) -> None:
    """The status line's part of a refresh (every second): the training time and the
    verdict, from the arms' chart snapshots."""
    snapshots = {arm: log.chart_snapshot(MAX_POINTS) for arm, log in logs.items()}
    experiments.training_seconds(snapshots)
    experiments.verdict(experiments.DEGRADATION_NAME, snapshots)


def charts(logs: dict, panel: LiveFigures) -> int:
    """The charts' part (every few seconds): figures rebuilt where their data changed,
    serialised as st.plotly_chart does; returns the bytes sent."""
    snapshots = {arm: log.chart_snapshot(MAX_POINTS) for arm, log in logs.items()}
    arm = next(iter(snapshots))
    figs = panel.figures("run", snapshots, (arm, lambda: logs[arm].chart_snapshot(200)))
    return sum(len(plotly.io.to_json(f, validate=False)) for f in figs)


def measure(logs: Logs, length: int) -> tuple[float, float, float, float]:
    """(first refresh ms, ms a refresh, kB a refresh, ms of the status line alone) once
    `length` steps are logged; a refresh is the status line and the charts."""
    logs.log_until(length - NEW_STEPS * ROUNDS)
    panel = LiveFigures()
    start = time.process_time()
    status(logs.reading)
    charts(logs.reading, panel)
    first = time.process_time() - start
    line, cpu, sent = 0.0, 0.0, 0
    for _ in range(ROUNDS):
        logs.log_until(logs.step + NEW_STEPS)
        start = time.process_time()
        status(logs.reading)
        mid = time.process_time()
        sent += charts(logs.reading, panel)
        line, cpu = line + mid - start, cpu + time.process_time() - start
    return first * 1e3, cpu / ROUNDS * 1e3, sent / ROUNDS / 1e3, line / ROUNDS * 1e3


def csv_seconds(snap, what: str) -> dict[str, float]:
    """Seconds to write one arm's steps as the Runs page's zip of tables and as the run
    export's metrics CSV; prints each with its size (the time grows with the bytes)."""
    out = {}
    writers = {
        "Runs page zip of tables (app.exports.arm_zip)": lambda: exports.arm_zip("r", "a", snap),
        "run export metrics CSV (core.export.metrics_csv)": lambda: metrics_csv(snap).encode(),
    }
    for name, write in writers.items():
        start = time.perf_counter()
        size = len(write())
        sec = out[f"{what}, {name}"] = time.perf_counter() - start
        print(
            f"CSV of {len(snap.steps):,} steps of {what}, {name}: {sec:.2f} s for "
            f"{size / 1e6:.0f} MB (target <= {CSV_S} s)"
        )
    return out


def csv_figures(logs: Logs) -> dict[str, float]:
    """The CSV downloads of the longest stored log (read from the store first), then of
    a log as long with ResNet-8's five rows, in memory."""
    arm = next(iter(logs.layers))
    start = time.perf_counter()
    snap = logs.store.snapshot(logs.run, arm)
    read = time.perf_counter() - start
    print(f"read {len(snap.steps):,} steps of {arm} from the store: {read:.2f} s")
    out = {"read from the store": read, **csv_seconds(snap, arm)}
    small = RunLog(("stem", "blocks.0", "blocks.1", "blocks.2", "head"))
    rng = np.random.default_rng(0)
    for step in range(1, len(snap.steps) + 1):
        small.append_step(record(step, 5, rng))
    out |= csv_seconds(small.snapshot(), "a 5-row net (ResNet-8)")
    return out | {"old/new": old_over_new(small.snapshot())}


def old_over_new(snap, steps: int = 30_000) -> float:
    """The steps table written as before (Snapshot.to_csv, the csv module, row by row)
    over its column-wise writer now (app.exports.tables), alternating in this process."""
    part = dataclasses.replace(snap, steps=snap.steps[:steps])
    took = _util.alternate({"old": part.to_csv, "new": lambda: exports.tables(part)}, 2)
    ratio = took["old"] / took["new"]
    print(f"steps table of {len(part.steps):,} steps: the old row-wise writer {ratio:.1f}x slower")
    return ratio


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arms", type=int, choices=(1, 4), default=1)
    ap.add_argument("--lengths", type=int, nargs="+", default=[100, 20_000, 300_000])
    ap.add_argument("--backends", nargs="+", default=["processes", "threads"])
    args = ap.parse_args(argv)
    _util.header("live refresh cost: CPU and bytes per refresh against the run's length")
    layers = nets(args.arms)
    print(f"arms: {', '.join(f'{a} ({len(n)} layers)' for a, n in layers.items())}")
    print(f"one refresh after {NEW_STEPS} new steps, mean of {ROUNDS}; CPU = process time")
    results: dict = {}
    for backend in args.backends:
        with tempfile.TemporaryDirectory() as folder:
            logs = Logs(backend, layers, folder)
            for length in sorted(args.lengths):
                first, ms, kb, line = results[backend, length] = measure(logs, length)
                base = results[backend, min(args.lengths)][1]
                ok = "met" if ms <= CPU_MS and kb <= KB else "NOT met"
                print(
                    f"{backend:9} {length:>8,} steps: {ms:6.1f} ms, {kb:6.1f} kB a refresh "
                    f"(x{ms / base:.2f} of the first length; status line alone {line:.1f} ms; "
                    f"first open {first:,.0f} ms) target <= {CPU_MS:.0f} ms, <= {KB:.0f} kB: {ok}"
                )
            if backend == "processes":
                results |= {("csv", what): sec for what, sec in csv_figures(logs).items()}
            if logs.writer is not None:
                logs.writer.close()
    return results


if __name__ == "__main__":
    main()
