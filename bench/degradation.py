"""He et al. 2015, Fig. 1 and Fig. 6, on built-in data in a few minutes of CPU:
a deeper plain net trains worse than a shallow one; the residual one does not.

Trains plain-20, plain-56, ResNet-20 and ResNet-56 (narrow: 8/16/32 filters) on the
built-in digits upscaled to 16x16 for the same number of steps, one seed, one batch
order. Prints the final training loss and accuracy (mean of the last 10% of steps) and
validation accuracy.

Why digits: on Shapes at 16x16 every net first sits on a plateau at chance, and in a
3-minute CPU budget the deep ones (residual included) do not leave it, which shows
nothing. Digits are learnt from the first steps, so the depth effect is what shows.

Run: .venv/bin/python bench/degradation.py
"""

from __future__ import annotations

import argparse
import time

import _util
import numpy as np

from core import experiments
from core.data import load
from core.model import build
from core.training import Trainer


def train_in_process(data, specs, config, seed: int = 0) -> dict[str, tuple[object, float]]:
    """Each net of the experiment trained to the end, one after the other, in this process:
    name -> (its final snapshot, its training seconds as the trainer counts them)."""
    out = {}
    for net in specs:
        spec = experiments.fit_to_data(net, data)
        trainer = Trainer(build(spec, seed=seed), data, config)
        while not trainer.done:
            trainer.step()
        out[spec.name] = (trainer.log.snapshot(), trainer.seconds)
    return out


def main(argv=None) -> dict[str, dict]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=experiments.DEGRADATION_STEPS)
    ap.add_argument("--data", choices=("digits", "shapes"), default=experiments.DEGRADATION_DATA)
    ap.add_argument("--size", type=int, default=experiments.SIZE)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    _util.header("degradation: plain-20 vs plain-56 vs ResNet-20 vs ResNet-56")
    # The experiment the Compare page runs (core.experiments), one validation at the end.
    data = load(experiments.data_request(args.data, size=args.size, seed=args.seed))
    cfg = experiments.settings(args.steps, seed=args.seed, lr=args.lr, evaluations=1)
    print(
        f"{args.data} {args.size}px, {len(data.y_train)} training images, {args.steps} steps "
        f"of batch 128, SGD lr {args.lr} cosine, seed {args.seed}"
    )
    start = time.perf_counter()
    trained = train_in_process(data, experiments.degradation_nets(), cfg, seed=args.seed)
    total = time.perf_counter() - start
    results = {}
    for name, (snap, seconds) in trained.items():
        tail = max(1, len(snap.steps) // 10)
        results[name] = r = {
            "train_loss": float(np.mean(snap.column("loss")[-tail:])),
            "train_acc": float(np.mean(snap.column("accuracy")[-tail:])) * 100,
            "val_acc": snap.evals[-1].accuracy * 100,
            "seconds": seconds,
        }
        print(
            f"{name:10s} train loss {r['train_loss']:.3f}  train acc {r['train_acc']:5.1f}%"
            f"  val acc {r['val_acc']:5.1f}%  ({r['seconds']:.0f} s)"
        )
    snaps = {name: snap for name, (snap, _) in trained.items()}
    print("what the Compare page says:", experiments.degradation_verdict(snaps))
    print(f"wall time {total:.0f} s (target < 180 s)")
    return results


if __name__ == "__main__":
    main()
