"""How fast Shapes draws 10,000 32x32 images, against two baselines timed in this run.

Baselines: torch.rand filling a tensor of the same size (the floor: one random number
per value), and the same generator called once per image (what vectorising saves).
Target: well under 2 s. Run: .venv/bin/python bench/shapes_speed.py
"""

from __future__ import annotations

import argparse
import os

import _util
import torch

from core.shapes_data import make_shapes

TARGET_S = 2.0


def main(argv=None) -> dict[str, float]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000, help="images per timed call")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--loop-n", type=int, default=100, help="images drawn one call each")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    _util.header(f"Shapes: {args.n:,} images of {args.size}x{args.size}")
    n, size = args.n, args.size
    gen = torch.Generator().manual_seed(0)
    make_shapes(64, size=size)  # warm up: the first call pays for allocator and kernels
    totals = _util.alternate(
        {
            "shapes": lambda: make_shapes(n, size=size, seed=0),
            "rand": lambda: torch.rand(n, 3, size, size, generator=gen),
            "loop": lambda: [make_shapes(1, size=size, seed=i) for i in range(args.loop_n)],
        },
        args.rounds,
    )
    shapes, rand = totals["shapes"] / args.rounds, totals["rand"] / args.rounds
    loop = totals["loop"] / args.rounds * n / args.loop_n  # extrapolated to n images
    print(f"# load average {os.getloadavg()[0]:.1f} (a busy machine is slower, ratios less so)")
    print(f"Shapes:               {shapes:7.3f} s  {n / shapes:9,.0f} images/s  (target < 2 s)")
    print(f"torch.rand same size: {rand:7.3f} s  -> Shapes costs {shapes / rand:.1f}x")
    print(f"one image per call:   {loop:7.3f} s  -> vectorised is {loop / shapes:.0f}x faster")
    print("ok" if shapes < TARGET_S else f"SLOWER than the {TARGET_S:.0f} s target")
    return {"shapes_s": shapes, "rand_s": rand, "loop_s": loop}


if __name__ == "__main__":
    main()
