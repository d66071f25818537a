"""bench/inside.py stays runnable: end to end at toy sizes (speed is judged by the bench's
own printout, never here)."""

import importlib
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_inside_bench_runs_at_toy_sizes(capsys):
    sys.path.insert(0, str(BENCH))
    try:
        bench = importlib.import_module("inside")
        args = "--preset resnet8_narrow --size 8 --shapes 120 --images 20 --draws 2 --grid 2"
        args += " --landscape-images 16 --batch 16 --rounds 1 --threads 1"
        result = bench.main(args.split())
    finally:
        sys.path.remove(str(BENCH))
    assert set(result) == {
        "train step",
        "lesions, single blocks",
        "lesions, single blocks, default layout",
        "lesions, k-curve (2 draws)",
        "landscape 1D (2 points)",
        "landscape 2D (2x2)",
        "interpolation (2 points)",
    }
    assert all(wall > 0 for wall, _ in result.values())
    out = capsys.readouterr().out
    assert "single-block lesions:" in out and "2x2 loss surface:" in out
