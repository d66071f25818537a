"""A run's training state in and out of checkpoints, so a resumed run goes on exactly
where it stopped: weights and optimizer (core.checkpoint), and what the Trainer keeps
beside them: step count, base learning rate (after a live lr change), a validation that
was cut short, the seed streams and the position in the epoch's batch order.

The batch order is restored by drawing the epoch's permutation again from the order
stream's state at the start of the epoch and skipping the batches already taken; the
noise stream (augmentation, dropout) is restored as it was before the next batch. An
interrupted step's batch counts as not taken: it is drawn and augmented again.
"""

from __future__ import annotations

import os

import torch

from core.checkpoint import load_checkpoint
from core.run import Run
from core.store_writer import RunWriter
from core.training import Trainer


def _generator(state: torch.Tensor, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device)
    gen.set_state(state)
    return gen


def trainer_extra(t: Trainer) -> tuple[dict, dict[str, torch.Generator]]:
    """What a checkpoint keeps beside weights and optimizer: (JSON, seed streams)."""
    waiting = t._waiting_batch is not None  # its batch is drawn again after a resume
    noise = t.noise_before if waiting else t.noise_gen.get_state()
    order = t.epoch_start if t.epoch_start is not None else t.order_gen.get_state()
    extra = {
        "step": t.step_count,
        "base_lr": t.base_lr,
        "eval_due": t.eval_due,
        "seconds": t.seconds,
        "epoch_started": t.epoch_start is not None,
        "batch_pos": t.batch_pos - (1 if waiting else 0),
    }
    gens = {"order": _generator(order, t.device), "noise": _generator(noise, t.device)}
    return extra, gens


def checkpoint_run(run: Run, writer: RunWriter, arms: dict[str, str] | None = None) -> None:
    """Hand every arm's checkpoint to the writer (written at its next flush).

    Args:
        arms: trainer name -> the arm's name in the store (default: the same).
    """
    for name, t in run.trainers.items():
        extra, gens = trainer_extra(t)
        extra["spec"] = t.net.current_spec().to_json(indent=None)
        store_arm = (arms or {}).get(name, name)
        writer.checkpoint(store_arm, t.net, t.optimizer, gens, step=t.step_count, extra=extra)


def restore_trainer(t: Trainer, path: str | os.PathLike) -> int:
    """Load a checkpoint into a freshly built Trainer (same spec, data and config);
    returns the step it continues from."""
    order = torch.Generator(t.device)
    header = load_checkpoint(path, t.net, t.optimizer, {"order": order, "noise": t.noise_gen})
    extra = header["extra"]
    t.step_count, t.base_lr = int(extra["step"]), float(extra["base_lr"])
    t.eval_due, t.seconds = bool(extra["eval_due"]), float(extra["seconds"])
    t.order_gen.set_state(order.get_state())
    if extra["epoch_started"]:
        t.epoch_start = t.order_gen.get_state()
        t._batches = t.data.batches(t.config.batch_size, generator=t.order_gen)
        for _ in range(int(extra["batch_pos"])):
            next(t._batches)
        t.batch_pos = int(extra["batch_pos"])
    t.resume_clock()
    return t.step_count
