"""Inside a trained net: the lesion study and the loss landscape, timed against one
training step (batch 128, the Trainer's own step) of the same net in the same process.

Targets on this CPU (issue 13), for ResNet-20 on built-in Shapes at 32x32: all single-block
lesions on 1,000 validation images in at most 10 s; the 11x11 loss surface on 256
training images in at most 60 s. The weights are only briefly trained: timing does not
depend on them. Prints seconds, ratios and whether each target is met; never asserts.
On a machine shared with other jobs, pass --threads 1 (two OpenMP threads fighting for
busy cores were 10x slower here) and read the CPU seconds: they leave out the waiting.
Run: .venv/bin/python bench/inside.py   (--size 16 for the 16x16 variant)
"""

from __future__ import annotations

import argparse
import time

import _util
import torch

from core.config import TrainConfig
from core.data import DataRequest, load
from core.landscape import LandscapeSettings, interpolation, slice_1d, slice_2d
from core.lesion import lesion_study
from core.model import build
from core.presets import PRESETS
from core.training import Trainer

LESION_SECONDS = 10.0  # all single-block lesions of ResNet-20 on 1,000 images
SURFACE_SECONDS = 60.0  # the 11x11 surface on 256 images
# The same lesions on a net in the default (contiguous) layout: how the Inside page's
# copies were laid out before they took the trainer's channels_last (app/inside_run.py).
LAYOUT_AB = "lesions, single blocks, default layout"


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all its threads). On a loaded machine
    the CPU seconds are the steadier number: waiting for a core does not count."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _step_seconds(trainer: Trainer, rounds: int) -> tuple[float, float]:
    """The fastest of `rounds` training steps, wall and CPU (noise only ever adds)."""
    trainer.step()  # warm-up: oneDNN picks its kernels on the first call
    times = [_timed(trainer.step) for _ in range(rounds)]
    return min(t[0] for t in times), min(t[1] for t in times)


def _parse(argv) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="resnet20")
    ap.add_argument("--size", type=int, default=32, help="image side in pixels")
    ap.add_argument("--shapes", type=int, default=6000, help="Shapes drawn (20%% validation)")
    ap.add_argument("--images", type=int, default=1000, help="validation images, lesions")
    ap.add_argument("--draws", type=int, default=5, help="random sets per k, lesion k-curve")
    ap.add_argument("--grid", type=int, default=11, help="points per axis, landscape")
    ap.add_argument("--landscape-images", type=int, default=256)
    ap.add_argument("--batch", type=int, default=128, help="training batch")
    ap.add_argument("--rounds", type=int, default=5, help="training steps timed")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    return ap.parse_args(argv)


def main(argv=None) -> dict[str, tuple[float, float]]:
    args = _parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    _util.header(f"inside a trained net: {args.preset} at {args.size}x{args.size}")
    data = load(DataRequest(name="shapes", size=args.size, n=args.shapes))
    spec = PRESETS[args.preset].spec(input_shape=data.input_shape, num_classes=data.num_classes)
    initial, net = build(spec, seed=0), build(spec, seed=0)
    plain_layout = build(spec, seed=0)  # the default layout, as a bare copy of the weights
    cfg = TrainConfig(steps=10_000, batch_size=args.batch, log_every=10_000, device="cpu")
    trainer = Trainer(net, data, cfg)  # channels_last on the CPU, as in a real run
    step = _step_seconds(trainer, args.rounds)
    s = LandscapeSettings(grid=args.grid, images=args.landscape_images)
    line = LandscapeSettings(grid=args.grid, low=0.0, high=1.0, images=args.landscape_images)
    g = args.grid
    plain_layout.load_state_dict(net.state_dict())
    runs = {
        "lesions, single blocks": lambda: lesion_study(net, data, images=args.images, draws=0),
        LAYOUT_AB: lambda: lesion_study(plain_layout, data, images=args.images, draws=0),
        f"lesions, k-curve ({args.draws} draws)": lambda: lesion_study(
            net, data, images=args.images, draws=args.draws
        ),
        f"landscape 1D ({g} points)": lambda: slice_1d(net, data, s),
        f"landscape 2D ({g}x{g})": lambda: slice_2d(net, data, s),
        f"interpolation ({g} points)": lambda: interpolation(initial, net, data, line),
    }
    seconds = {name: _timed(fn) for name, fn in runs.items()}
    print(f"train step (batch {args.batch}): {step[0] * 1000:.0f} ms, CPU {step[1] * 1000:.0f} ms")
    print(f"{'experiment':40} {'wall s':>8} {'x step':>7} {'CPU s':>8} {'x step':>7}")
    for name, (wall, cpu) in seconds.items():
        print(f"{name:40} {wall:8.2f} {wall / step[0]:7.1f} {cpu:8.2f} {cpu / step[1]:7.1f}")
    n_val = min(args.images, len(data.y_val))
    print(f"(lesions on {n_val} validation images, landscape on {s.images} training images)")
    print("targets (wall seconds):")
    for what, key, limit in (
        ("single-block lesions", "lesions, single blocks", LESION_SECONDS),
        (f"{g}x{g} loss surface", f"landscape 2D ({g}x{g})", SURFACE_SECONDS),
    ):
        wall, cpu = seconds[key]
        met = "met" if wall <= limit else "NOT met"
        print(f"  {what}: {wall:.1f} s (<= {limit:g} s): {met}; CPU {cpu:.1f} s")
    fast, slow = seconds["lesions, single blocks"][1], seconds[LAYOUT_AB][1]
    print(f"channels_last against the default layout, lesions: {fast / slow:.2f}x the CPU time")
    return {"train step": step, **seconds}


if __name__ == "__main__":
    main()
