"""bench/restart.py stays runnable, and what it measures holds: after kill -9 of the
server's process its training runs are listed again as interrupted (not failed, also
once the orphaned workers have seen the pipe close), and one resumes and trains on."""

import importlib
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.slow
def test_the_restart_bench_lists_interrupted_runs_that_resume(capsys):
    sys.path.insert(0, str(BENCH))
    try:
        bench = importlib.import_module("restart")
        args = ["--rounds", "1", "--stored", "3", "--stored-steps", "50", "--kill-at", "12"]
        (result,) = bench.main(args)
    finally:
        sys.path.remove(str(BENCH))
    assert (result["listed"], result["interrupted"]) == (5, 2)
    assert result["message"].startswith("interrupted at step ")
    assert result["after_workers_ended"] == ["interrupted"]  # the orphans did not fail them
    assert result["steps_resumed_from"] >= 12
    assert result["kill_to_listed_s"] > 0 and result["kill_to_training_again_s"] > 0
    assert "kill_to_listed_s: median" in capsys.readouterr().out
