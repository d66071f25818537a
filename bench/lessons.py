"""Every lesson at its classroom size on this machine: seconds, whether its claims held,
and the numbers they were decided on. The issue asks for at most 60 s per lesson on a
2-core CPU; each line gives wall and CPU seconds and the load average, since a busy
machine stretches wall time.

Run: .venv/bin/python bench/lessons.py [--threads N] [--only 02-deeper ...] [--tiny]
"""

from __future__ import annotations

import argparse
import os
import time

import _util
import torch

from core.lesson_runs import run_lesson
from core.lessons import load_lessons


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--only", nargs="*", default=None, help="lesson keys, e.g. 02-deeper")
    ap.add_argument("--tiny", action="store_true", help="the test suite's sizes")
    ap.add_argument("--device", default="auto")
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
        rows.append({"key": lesson.key, "seconds": result.seconds, "cpu": cpu, "held": result.held})
    # On a loaded machine wall time counts the other processes' turns too; with one torch
    # thread, CPU time is what the lesson takes on a core of its own.
    over = [r["key"] for r in rows if r["seconds"] > 60]
    print(f"lessons over 60 s of wall time here: {', '.join(over) or 'none'}")
    return rows


if __name__ == "__main__":
    main()
