"""The engine's device settings against naive fp32: steps per second, alternated in one
process, and the validation accuracy of a short run with each, which must stay within
0.5 points. On CPU: channels_last, and bf16 autocast where the CPU has bf16 support.

Run: .venv/bin/python bench/speed_settings.py
"""

from __future__ import annotations

import argparse

import _util
import torch

from core.config import TrainConfig
from core.data import DataRequest, load
from core.model import build
from core.presets import cifar_resnet
from core.training import Trainer


def settings(device: str) -> dict[str, dict]:
    out = {
        "naive fp32": {"precision": "fp32", "channels_last": False},
        "channels_last": {"precision": "fp32", "channels_last": True},
    }
    bf16_cpu = device == "cpu" and torch.backends.mkldnn.is_available() and _cpu_has_bf16()
    if device == "cuda" or bf16_cpu:
        out["channels_last + bf16"] = {"precision": "bf16", "channels_last": True}
    return out


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.backends.cpu.get_cpu_capability() in ("AVX512", "AMX")) and (
            torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):
        return False


def main(argv=None) -> dict[str, float]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5, help="steps per setting per round")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--train-steps", type=int, default=200, help="accuracy run length")
    ap.add_argument("--size", type=int, default=16)
    args = ap.parse_args(argv)
    _util.header("device settings vs naive fp32")
    data = load(DataRequest(name="shapes", size=args.size, n=4000))
    spec = cifar_resnet(
        3, widths=(8, 16, 32), input_shape=data.input_shape, num_classes=data.num_classes
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    trainers = {
        name: Trainer(
            build(spec, seed=0), data, TrainConfig(steps=10**6, batch_size=128, lr=0.05, **kw)
        )
        for name, kw in settings(device).items()
    }
    runs = {
        name: (lambda t=t: [t.step() for _ in range(args.steps)]) for name, t in trainers.items()
    }
    _util.alternate(runs, 1)  # warm-up: oneDNN builds its kernels on first use
    times = _util.alternate(runs, args.rounds)
    n = args.steps * args.rounds
    base = times["naive fp32"]
    print(f"{spec.name} narrow, batch 128, {args.size}px on {device}")
    for name, t in times.items():
        print(f"{name:22s} {n / t:7.1f} steps/s   speed-up x{base / t:.2f}")

    # Accuracy: a short run to convergence (cosine to zero) on the built-in digits, where
    # a run ends near its ceiling; a run stopped mid-way on a harder set would compare
    # two points of a noisy trajectory instead of the settings.
    digits = load(DataRequest(name="digits", size=args.size))
    small = cifar_resnet(3, widths=(8, 16, 32), input_shape=digits.input_shape, num_classes=10)
    accuracy = {}
    for name, kw in settings(device).items():
        cfg = TrainConfig(
            steps=args.train_steps,
            batch_size=128,
            lr=0.1,
            schedule="cosine",
            warmup_steps=args.train_steps // 10,
            **kw,
        )
        t = Trainer(build(small, seed=0), digits, cfg)
        while not t.done:
            t.step()
        accuracy[name] = t.log.snapshot().evals[-1].accuracy * 100
    for name, acc in accuracy.items():
        gap = acc - accuracy["naive fp32"]
        verdict = "ok" if abs(gap) <= 0.5 else "OUTSIDE 0.5 points"
        print(f"{name:22s} val accuracy {acc:5.1f}%  ({gap:+.1f} points: {verdict})")
    return {name: base / t for name, t in times.items()}


if __name__ == "__main__":
    main()
