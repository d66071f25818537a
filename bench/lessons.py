"""Every lesson at its classroom size on this machine: seconds, whether its claims held,
and the numbers they were decided on. The issue asks for at most 60 s per lesson on a
2-core CPU; each line gives wall and CPU seconds and the load average, since a busy
machine stretches wall time.

A lesson with a transfer stage (lesson 9) also prints that stage's seconds; with
`--seeds N` its stage runs again on seeds 0..N-1, one line of validation accuracies per
seed, to show how reliably the transferred net leads (the lesson itself runs one seed).

Run: .venv/bin/python bench/lessons.py [--threads N] [--only 02-deeper ...] [--tiny]
     [--seeds N]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import _util
import numpy as np
import torch

from core.lesson_runs import run_lesson
from core.lesson_transfer import SCRATCH, SOURCE, TRANSFERRED, run_transfer
from core.lessons import load_lessons


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--only", nargs="*", default=None, help="lesson keys, e.g. 02-deeper")
    ap.add_argument("--tiny", action="store_true", help="the test suite's sizes")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seeds", type=int, default=0, help="rerun a transfer stage on N seeds")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    _util.header("lessons at classroom size" if not args.tiny else "lessons at test size")
    rows = []
    for lesson in load_lessons():
        if args.only and lesson.key not in args.only:
            continue
        cpu = time.process_time()
        result = run_lesson(lesson, tiny=args.tiny, device=args.device)
        cpu = time.process_time() - cpu
        load = os.getloadavg()[0]
        print(
            f"{lesson.key:15s} {result.seconds:6.1f} s wall, {cpu:6.1f} s CPU  claims "
            f"{'held' if result.held else 'FAILED'}  (load {load:.1f})"
        )
        for c in result.claims:
            numbers = ", ".join(f"{k} {v:.4g}" for k, v in c.numbers.items())
            print(f"    {'ok ' if c.held else 'NO '} {c.text}  [{numbers}]")
        if "transfer_seconds" in result.details:
            print(f"    of which the transfer stage: {result.details['transfer_seconds']:.1f} s")
        if lesson.transfer is not None:
            _seeds(lesson.transfer, args.seeds, args.device)
        rows.append({"key": lesson.key, "seconds": result.seconds, "cpu": cpu, "held": result.held})
    # On a loaded machine wall time counts the other processes' turns too; with one torch
    # thread, CPU time is what the lesson takes on a core of its own.
    over = [r["key"] for r in rows if r["seconds"] > 60]
    print(f"lessons over 60 s of wall time here: {', '.join(over) or 'none'}")
    return rows


def _seeds(stage, n: int, device: str) -> None:
    """The transfer stage on seeds 0..n-1: each net's last validation accuracy, and the
    mean over the run (the lesson's claim: the transferred net's is higher)."""
    held = 0
    for seed in range(n):
        start = time.perf_counter()
        logs = run_transfer(dataclasses.replace(stage, seed=seed), device=device)
        last = {k: log.evals[-1].accuracy for k, log in logs.items()}
        mean = {k: float(np.mean([e.accuracy for e in log.evals])) for k, log in logs.items()}
        held += mean[TRANSFERRED] > mean[SCRATCH]
        print(
            f"    seed {seed}: source {last[SOURCE]:.3f} | last val_acc transferred "
            f"{last[TRANSFERRED]:.3f} scratch {last[SCRATCH]:.3f} | mean transferred "
            f"{mean[TRANSFERRED]:.3f} scratch {mean[SCRATCH]:.3f} "
            f"({'held' if mean[TRANSFERRED] > mean[SCRATCH] else 'NOT held'}) "
            f"{time.perf_counter() - start:.1f} s"
        )
    if n:
        print(f"    val_acc_mean transferred > scratch held on {held} of {n} seeds")


if __name__ == "__main__":
    main()
