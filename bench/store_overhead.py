"""Cost of the run store: Trainer.step() writing every step's record (and a checkpoint
every 100 steps) through RunWriter into SQLite, vs the same training with a memory-only
RunLog. Same process, same net and batch order, rounds interleaved.

Also prints what one logged step costs on disk as float64 BLOBs vs JSON text.
Target: ratio <= 1.02. Run: .venv/bin/python bench/store_overhead.py
"""

from __future__ import annotations

import argparse
import json
import tempfile

import _util
import torch

from core.config import TrainConfig
from core.data import DataRequest, load
from core.model import build
from core.presets import PRESETS
from core.store import RunStore
from core.store_records import floats_to_blob
from core.store_writer import RunWriter
from core.training import Trainer, layer_names

TARGET = 1.02


def main(argv=None) -> float:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=50, help="steps per contender per round")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--checkpoint-every", type=int, default=100)
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: steady on a busy machine)"
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    _util.header("store overhead: Trainer writing through RunWriter vs memory only")
    data = load(DataRequest(name="shapes", size=16, n=2000))
    spec = PRESETS["resnet8_narrow"].spec(
        input_shape=data.input_shape, num_classes=data.num_classes
    )
    cfg = TrainConfig(steps=10**6, batch_size=64, lr=0.05, seed=0, eval_every=10**6)
    folder = tempfile.TemporaryDirectory()
    store = RunStore(folder.name)
    run_id = store.create_run("bench", "overhead", arms={"residual": spec}, config=cfg)
    writer = RunWriter(store, run_id)

    net = build(spec, seed=0)
    names = tuple(n for n, p in net.named_parameters() if p.requires_grad)
    log = writer.log("residual", layer_names(net), names)
    stored = Trainer(net, data, cfg, log=log)
    memory = Trainer(build(spec, seed=0), data, cfg)

    def stored_steps():
        for _ in range(args.steps):
            stored.step()
            if stored.step_count % args.checkpoint_every == 0:
                writer.checkpoint(
                    "residual",
                    stored.net,
                    stored.optimizer,
                    {"order": stored.order_gen},
                    step=stored.step_count,
                )

    def memory_steps():
        for _ in range(args.steps):
            memory.step()

    runs = {"memory": memory_steps, "stored": stored_steps}
    _util.alternate(runs, 1)  # warm-up
    t = _util.alternate(runs, args.rounds)
    writer.close()
    n = args.steps * args.rounds
    ratio = t["stored"] / t["memory"]
    record = log.snapshot().last
    per_layer = (record.grad_norms, record.weight_norms, record.update_ratios)
    blob = sum(len(floats_to_blob(s)) for s in per_layer)
    text = sum(len(json.dumps(list(s))) for s in per_layer)
    print(f"{spec.name}, batch {cfg.batch_size}, 16px, {n} steps each, every step stored")
    print(f"memory only: {n / t['memory']:.1f} steps/s")
    print(f"stored:      {n / t['stored']:.1f} steps/s (saving: {writer.saving})")
    print(f"per-layer arrays of one step: {blob} bytes as float64 BLOBs, {text} as JSON text")
    print(
        f"ratio stored/memory: {ratio:.3f}  (target <= {TARGET}: "
        f"{'met' if ratio <= TARGET else 'NOT met'})"
    )
    folder.cleanup()
    return ratio


if __name__ == "__main__":
    main()
