"""Cost of the engine's telemetry: Trainer.step() with every-step per-layer norms (gradient
norms accumulated in float64) and the stop/pause polling a run installs, vs a bare
hand-written PyTorch loop on the same model, data and batch order.

Target: ratio <= 1.05 on CPU. Run: .venv/bin/python bench/telemetry_overhead.py
"""

from __future__ import annotations

import argparse
import dataclasses

import _util
import torch
import torch.nn.functional as F

from core.config import TrainConfig
from core.data import DataRequest, load
from core.model import build
from core.presets import cifar_resnet
from core.training import Trainer

TARGET = 1.05


def main(argv=None) -> float:
    ap = argparse.ArgumentParser()
    ap.add_argument("--depth-n", type=int, default=3, help="n of the 6n+2 CIFAR net")
    ap.add_argument("--steps", type=int, default=10, help="steps per contender per round")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--size", type=int, default=16)
    args = ap.parse_args(argv)
    _util.header("telemetry overhead: Trainer vs bare loop")
    data = load(DataRequest(name="shapes", size=args.size, n=4000))
    spec = cifar_resnet(
        args.depth_n, widths=(8, 16, 32), input_shape=data.input_shape, num_classes=data.num_classes
    )
    # Validation is a feature of its own (once per epoch); the bare loop has none, so it
    # is off here: this measures the per-step telemetry alone.
    cfg = TrainConfig(steps=10**6, batch_size=128, lr=0.05, seed=0, eval_every=10**6)
    # As a Run builds it: with an interrupt polled at every block (never firing here).
    trainer = Trainer(build(spec, seed=0), data, cfg, interrupt=lambda: False)
    # The same engine logging only every 10,000th step: what the telemetry itself costs.
    quiet_cfg = dataclasses.replace(cfg, log_every=10_000)
    quiet = Trainer(build(spec, seed=0), data, quiet_cfg, interrupt=lambda: False)

    # The bare loop: same net, same device settings, same batch order and normalisation.
    net = build(spec, seed=0).to(trainer.device, memory_format=_fmt(trainer))
    opt = torch.optim.SGD(
        net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    gen = torch.Generator(trainer.device).manual_seed(0)
    batches = iter(())

    def bare_steps():
        nonlocal batches
        for _ in range(args.steps):
            try:
                x, y = next(batches)
            except StopIteration:
                batches = data.batches(cfg.batch_size, generator=gen)
                x, y = next(batches)
            x = ((x - trainer.mean) / trainer.std).contiguous(memory_format=_fmt(trainer))
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()  # a hand-written loop prints its loss too

    def engine_steps():
        for _ in range(args.steps):
            trainer.step()

    def quiet_steps():
        for _ in range(args.steps):
            quiet.step()

    runs = {"bare": bare_steps, "engine": engine_steps, "quiet": quiet_steps}
    _util.alternate(runs, 1)  # warm-up
    t = _util.alternate(runs, args.rounds)
    n = args.steps * args.rounds
    ratio = t["engine"] / t["bare"]
    print(
        f"{spec.name} narrow, batch {cfg.batch_size}, {args.size}px, {n} steps each, "
        f"{len(trainer.layers)} layers logged every step"
    )
    print(f"bare loop: {n / t['bare']:.1f} steps/s")
    print(f"engine:    {n / t['engine']:.1f} steps/s")
    print(
        f"engine, telemetry every 10,000 steps: {n / t['quiet']:.1f} steps/s "
        f"(telemetry alone: x{t['engine'] / t['quiet']:.3f})"
    )
    print(
        f"ratio engine/bare: {ratio:.3f}  (target <= {TARGET}: "
        f"{'met' if ratio <= TARGET else 'NOT met'})"
    )
    return ratio


def _fmt(trainer: Trainer):
    return torch.channels_last if trainer.channels_last else torch.contiguous_format


if __name__ == "__main__":
    main()
