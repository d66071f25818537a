"""Shared bits for the benchmarks: import path, alternating timers, a quiet header."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def header(title: str) -> None:
    import torch

    print(f"# {title}")
    print(
        f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, {torch.get_num_threads()} threads, "
        f"cuda={'yes: ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no'}"
    )


def alternate(runs: dict[str, Callable[[], None]], rounds: int) -> dict[str, float]:
    """Run each callable once per round, in turn, and sum the seconds each took.

    Alternating in one process spreads the machine's noise evenly over the contenders,
    which is what makes the ratios meaningful on a shared, noisy machine.
    """
    totals = dict.fromkeys(runs, 0.0)
    for _ in range(rounds):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            totals[name] += time.perf_counter() - start
    return totals
