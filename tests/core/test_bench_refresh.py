"""bench/refresh_cost.py stays runnable at toy sizes (it prints; no timing is asserted)."""

import importlib
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_refresh_cost_runs_on_both_backends(capsys):
    sys.path.insert(0, str(BENCH))
    try:
        bench = importlib.import_module("refresh_cost")
    finally:
        sys.path.remove(str(BENCH))
    results = bench.main(["--lengths", "60", "120"])
    assert {k for k in results if k[0] != "csv"} == {
        (b, n) for b in ("processes", "threads") for n in (60, 120)
    }
    assert all(v[2] > 0 for k, v in results.items() if k[0] != "csv")  # kB a refresh
    assert len([k for k in results if k[0] == "csv"]) == 6  # a read, 2 writers x 2 nets, a ratio
    assert results["csv", "old/new"] > 0
    out = capsys.readouterr().out
    assert "threads        120 steps:" in out and "CSV of 120 steps of ResNet-56" in out
