"""One short script for a CUDA machine: the CUDA path end to end (bf16 autocast,
channels_last, data resident on the device), its throughput against fp32, and
CIFAR-10-sized throughput for ResNet-20. Prints everything; asserts the path only.

Run on a GPU:  .venv/bin/python bench/gpu_check.py
On a CPU (the logic only, tiny sizes):  .venv/bin/python bench/gpu_check.py --smoke
"""

from __future__ import annotations

import argparse
import time

import _util
import torch

from core.config import TrainConfig
from core.data import TensorData
from core.model import build
from core.presets import cifar_resnet
from core.training import Trainer, describe_device


def synthetic(n: int, size: int, device: str) -> TensorData:
    """CIFAR-10-shaped random data, made on the device (no download, no host copy)."""
    g = torch.Generator(device).manual_seed(0)
    x = torch.rand(n, 3, size, size, generator=g, device=device)
    y = torch.randint(0, 10, (n,), generator=g, device=device)
    split = n * 9 // 10
    return TensorData(
        name="synthetic",
        classes=tuple(str(i) for i in range(10)),
        x_train=x[:split],
        y_train=y[:split],
        x_val=x[split:],
        y_val=y[split:],
        mean=(0.5,) * 3,
        std=(0.29,) * 3,
    )


def check_path(trainer: Trainer, device: str) -> list[str]:
    """The CUDA path as promised: autocast, channels_last, data and weights on the device."""
    problems = []
    if trainer.device.type != device:
        problems.append(f"trained on {trainer.device}, not {device}")
    if trainer.data.x_train.device.type != device:
        problems.append("the dataset is not resident on the device")
    if device == "cuda" and not trainer.autocast:
        problems.append("bf16 autocast is off")
    conv = next(m for m in trainer.net.modules() if isinstance(m, torch.nn.Conv2d))
    if not conv.weight.is_contiguous(memory_format=torch.channels_last):
        problems.append("conv weights are not channels_last")
    record = trainer.step()
    if record is None or not torch.isfinite(torch.tensor(record.loss)):
        problems.append("the first step gave no finite loss")
    return problems


def throughput(trainer: Trainer, steps: int) -> float:
    """Images per second over `steps` steps, after a warm-up; synchronised at both ends."""
    for _ in range(3):
        trainer.step()
    _sync(trainer.device)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    _sync(trainer.device)
    return steps * trainer.config.batch_size / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="run the logic on CPU, tiny sizes")
    args = ap.parse_args(argv)
    _util.header("GPU check")
    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here; use --smoke to exercise the logic on the CPU")
    device = "cpu" if args.smoke else "cuda"
    n, steps, batch = (512, 3, 64) if args.smoke else (50_000, 100, 128)
    data = synthetic(n, 32, device)
    print(f"device: {describe_device(torch.device(device))}")

    fast = Trainer(
        build(cifar_resnet(3), seed=0),
        data,
        TrainConfig(steps=10**6, batch_size=batch, device=device),
    )
    problems = check_path(fast, device)
    ok = "ok (bf16 autocast, channels_last, data on device)" if device == "cuda" else "ok"
    print(f"{device.upper()} path: {'; '.join(problems) or ok}")

    plain = Trainer(
        build(cifar_resnet(3), seed=0),
        data,
        TrainConfig(
            steps=10**6, batch_size=batch, device=device, precision="fp32", channels_last=False
        ),
    )
    ips_fast = throughput(fast, steps)
    ips_fp32 = throughput(plain, steps)
    print(
        f"ResNet-20, batch {batch}, 32x32: {ips_fast:,.0f} img/s with the engine's "
        f"settings, {ips_fp32:,.0f} img/s naive fp32: x{ips_fast / ips_fp32:.2f}"
    )
    epoch = len(data.y_train) / ips_fast
    print(f"CIFAR-10-sized epoch ({len(data.y_train):,} images): {epoch:.1f} s")
    if problems:
        raise SystemExit(1)
    return {"img_per_s": ips_fast, "img_per_s_fp32": ips_fp32, "problems": problems}


if __name__ == "__main__":
    main()
