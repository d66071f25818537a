"""bench/classroom_load.py stays runnable against the real server and browser, at toy
size (no timing is asserted; the bench prints its figures): two students, a few seconds,
two open/close cycles, and neither page ever shows the other's run."""

import importlib
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_the_classroom_bench_runs_and_keeps_students_apart(capsys):
    sys.path.insert(0, str(BENCH))
    try:
        bench = importlib.import_module("classroom_load")
        result = bench.main(["--students", "2", "--seconds", "8", "--cycles", "2"])
    finally:
        sys.path.remove(str(BENCH))
    assert result["problems"] == []
    assert set(result["stats"]) == {"before", "after the class", "after 2 open/close"}
    out = capsys.readouterr().out
    assert "isolation: every page showed only its own run" in out
    assert "open/close cycles failed: 0 of 2" in out
