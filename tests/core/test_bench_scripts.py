"""The benchmark scripts stay runnable: each runs end to end at toy sizes (no timing is
asserted; bench/ prints ratios, tests never judge speed)."""

import importlib
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    yield lambda name: importlib.import_module(name)
    sys.path.remove(str(BENCH))


def test_gpu_check_logic_runs_on_cpu(bench, capsys):
    result = bench("gpu_check").main(["--smoke"])
    assert result["problems"] == []
    assert result["img_per_s"] > 0 and result["img_per_s_fp32"] > 0
    assert "CPU path: ok" in capsys.readouterr().out


def test_telemetry_overhead_runs(bench, capsys):
    ratio = bench("telemetry_overhead").main(["--rounds", "1", "--steps", "1", "--size", "16"])
    assert ratio > 0
    assert "ratio engine/bare" in capsys.readouterr().out


def test_degradation_runs(bench, capsys):
    results = bench("degradation").main(["--steps", "2"])
    assert set(results) == {"Plain-20", "Plain-56", "ResNet-20", "ResNet-56"}
    assert "wall time" in capsys.readouterr().out
