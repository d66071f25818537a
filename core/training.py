"""Trainer: one optimizer step at a time, with the telemetry the charts need.

Per logged step it records loss, accuracy and, per layer, the gradient norm (read after
backward, before the optimizer step), the weight norm and the update-to-weight ratio, in
fused `torch._foreach_norm` passes with a single host sync. Every random draw (batch
order, augmentation, dropout) comes from the run's own generators. A run's `interrupt`
is polled between blocks and between validation batches, so a stop lands within a
fraction of a long step. Never imports the UI.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from core.blocks import set_dropout_generator
from core.config import ConfigError, TrainConfig
from core.data import TensorData, augment
from core.interruptible import StepUndo, watch
from core.model import Net
from core.telemetry import EvalRecord, Event, RunLog, StepRecord

EVAL_BATCH = 1024


class Interrupted(Exception):
    """`interrupt` said stop: the step was dropped before the optimizer touched a weight
    (its batch waits for the next call), or a validation was cut short (redone in full)."""


class DivergedError(RuntimeError):
    """The loss became NaN or infinite; what was recorded before is kept."""

    def __init__(self, step: int, lr: float):
        self.step = step
        super().__init__(
            f"the loss became NaN or infinite at step {step} (learning rate {lr:g}); the run "
            f"was stopped there. Lower the learning rate (try {lr / 10:g}), add warm-up "
            "steps, or turn BatchNorm on"
        )


def pick_device(name: str = "auto") -> torch.device:
    """CUDA, then Apple's MPS, then the CPU; or the device named, if it is there."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise ConfigError(f"this server has no {name.upper()} device; choose 'auto' or 'cpu'")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    """'NVIDIA H200' or 'CPU (16 cores)': what the page shows."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({os.cpu_count()} cores)"


def layer_names(net: Net) -> tuple[str, ...]:
    """Telemetry rows, named as the builder names blocks: stem, blocks.0, ..., head."""
    names = ["stem"] if any(True for _ in net.stem.parameters()) else []
    names += [f"blocks.{i}" for i, b in enumerate(net.blocks) if any(True for _ in b.parameters())]
    return (*names, "head")


def layer_of(param_name: str) -> str:
    """'blocks.3.conv1.weight' -> 'blocks.3'; 'stem.bn.bias' -> 'stem'."""
    parts = param_name.split(".")
    return ".".join(parts[:2]) if parts[0] == "blocks" else parts[0]


class Trainer:
    """Trains one Net on one TensorData, a step at a time.

    Args:
        net: the model; moved to the device here.
        data: the dataset, on any device; moved to the training device once.
        config: the training settings, validated against the dataset size.
        log: where records go; a fresh RunLog if None.
        interrupt: polled at each block and validation batch; True: `step` raises Interrupted.
    """

    def __init__(
        self,
        net: Net,
        data: TensorData,
        config: TrainConfig,
        log: RunLog | None = None,
        interrupt: Callable[[], bool] | None = None,
    ):
        config.validate(len(data.y_train))
        self.config = config
        self.device = pick_device(config.device)
        cuda = self.device.type == "cuda"
        # bf16 autocast: by default on CUDA only; asked for explicitly, on the CPU too.
        self.autocast = config.precision == "bf16" or (cuda and config.precision == "auto")
        # channels_last: by default on CUDA and the CPU (oneDNN's fast layout, see
        # bench/speed_settings.py); MPS keeps the default layout.
        self.channels_last = config.channels_last
        if self.channels_last is None:
            self.channels_last = self.device.type in ("cuda", "cpu")
        fmt = torch.channels_last if self.channels_last else torch.preserve_format
        self.net = net.to(self.device, memory_format=fmt)
        self.data = data if data.device == self.device else data.to(self.device)
        self.mean = torch.tensor(data.mean, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(data.std, device=self.device).view(1, -1, 1, 1)

        # One seed, three streams: batch order, augmentation and dropout. Twin arms built
        # with one seed therefore see the same batches, crops and dropout masks.
        self.order_gen = torch.Generator(self.device).manual_seed(config.seed)
        self.noise_gen = torch.Generator(self.device).manual_seed(config.seed + 1)
        set_dropout_generator(self.net, self.noise_gen)

        self.params = [p for p in self.net.parameters() if p.requires_grad]
        names = [n for n, p in self.net.named_parameters() if p.requires_grad]
        self.layers = layer_names(self.net)
        index = {name: i for i, name in enumerate(self.layers)}
        self.layer_of_param = torch.tensor([index[layer_of(n)] for n in names], device=self.device)
        self.log = log or RunLog(self.layers, tuple(names))
        self.optimizer = _make_optimizer(self.params, config)
        self._init_state(len(self.data.y_train))
        self.interrupt = interrupt
        self._undo = StepUndo(self.net, self.noise_gen)  # a cut-short step leaves no trace
        if interrupt is not None:
            watch(self.net, self._check_interrupt)

    def _init_state(self, n: int) -> None:
        c = self.config
        self.steps_per_epoch = c.steps_per_epoch(n)
        self.total_steps = c.total_steps(n)
        self.eval_every = c.eval_every or self.steps_per_epoch
        self.step_count = 0
        self.base_lr = c.lr
        self.last_batch = self._waiting_batch = None  # the latter: an interrupted step's
        self._batches = iter(())
        # core.run_state: order stream at the epoch's draw, batches since, noise before
        self.epoch_start, self.batch_pos, self.noise_before = None, 0, None
        self.eval_due = False  # a validation was cut short: it runs again first
        # Gradient norms add squares in float64, so a vanishing gradient of 1e-30 (squared:
        # 1e-60, zero in float32) still reads 1e-30. MPS has no float64: float32 there.
        self._acc = torch.float32 if self.device.type == "mps" else torch.float64
        self._zero = torch.zeros((), device=self.device)
        self._weights = [p.detach() for p in self.params]
        self._before = [torch.empty_like(w) for w in self._weights]
        self._layer_sums = torch.zeros(3, len(self.layers), device=self.device, dtype=self._acc)
        self._clock = time.perf_counter()
        self._last_logged = (0, self._clock)
        self.seconds = 0.0  # training time, pauses excluded
        self.images_per_s = 0.0

    # -- schedule ---------------------------------------------------------------------------

    def lr_factor(self, step: int) -> float:
        """The schedule's multiplier at `step` (0-based), warm-up included."""
        c, total = self.config, self.total_steps
        t = min(step / max(total - 1, 1), 1.0)
        if c.schedule == "step":
            factor = c.gamma ** sum(step >= m * total for m in c.milestones)
        elif c.schedule == "cosine":
            factor = 0.5 * (1 + math.cos(math.pi * t))
        elif c.schedule == "onecycle":  # up for 30% of the run, then anneal (Smith 2018)
            up = 0.3
            if t < up:
                factor = 0.04 + 0.96 * t / up
            else:
                factor = 0.5 * (1 + math.cos(math.pi * (t - up) / (1 - up)))
        else:
            factor = 1.0
        if step < c.warmup_steps:  # linear warm-up from a tenth of the rate
            factor *= 0.1 + 0.9 * step / c.warmup_steps
        return factor

    @property
    def lr(self) -> float:
        return self.base_lr * self.lr_factor(self.step_count)

    @property
    def done(self) -> bool:
        """Every step taken and the last validation recorded."""
        return self.step_count >= self.total_steps and not self.eval_due

    @property
    def epoch(self) -> float:
        return self.step_count / self.steps_per_epoch

    # -- commands, applied between steps ------------------------------------------------

    def set_lr(self, lr: float) -> None:
        """Make the current rate `lr`; the schedule goes on from there, scaled."""
        TrainConfig(lr=lr).validate()
        if math.isclose(self.lr, lr, rel_tol=1e-9):
            return  # a repeated command changes nothing and leaves no event
        self.base_lr = lr / max(self.lr_factor(self.step_count), 1e-12)
        self.log.append_event(Event(step=self.step_count, kind="lr", detail=f"lr = {lr:g}"))

    def set_skip(self, on: bool, block: int | None = None) -> None:
        """Switch skips; logged as an event only if something changed (a repeated
        command, e.g. a double-delivered click, leaves no trace)."""
        before = self.net.skips()
        self.net.set_skip(on, block)
        if self.net.skips() == before:
            return
        where = "all blocks" if block is None else f"block {block}"
        detail = f"skip {'on' if on else 'off'}: {where}"
        self.log.append_event(Event(step=self.step_count, kind="skip", detail=detail))

    # -- the step ---------------------------------------------------------------------------

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised, in the net's memory layout: for training and evaluation alike."""
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._waiting_batch is not None:  # the batch of an interrupted step, once more
            return self._waiting_batch
        try:
            x, y = next(self._batches)
        except StopIteration:
            self.epoch_start, self.batch_pos = self.order_gen.get_state(), 0
            self._batches = self.data.batches(self.config.batch_size, generator=self.order_gen)
            x, y = next(self._batches)
        self.batch_pos += 1
        self.noise_before = self.noise_gen.get_state()
        if self.config.augment:
            x = augment(x, generator=self.noise_gen)
        self._waiting_batch = self.last_batch = (self.prepare(x), y)
        return self._waiting_batch

    def _autocast(self):
        if self.autocast:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step(self) -> StepRecord | None:
        """One optimizer step; returns its record on logged steps, else None.

        Raises:
            DivergedError: the loss is NaN or infinite (checked on logged steps).
            Interrupted: `interrupt` said stop; the next call takes this step again.
        """
        if self.eval_due:
            self._evaluate_due()
        if self.step_count >= self.total_steps:
            return None
        lr = self.lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x, y = self._next_batch()
        logits, loss = self._forward_backward(x, y)
        self._waiting_batch = None
        self.step_count += 1
        if self.step_count % self.config.log_every and not self.done:
            self.optimizer.step()
            return None
        grads, weights = self._measure_before_step()
        self.optimizer.step()
        record = self._record(grads, weights, loss, logits, y, lr)
        if self.step_count % self.eval_every == 0 or self.done:
            self.eval_due = True
            self._evaluate_due()
        return record

    def _forward_backward(self, x, y) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.net.training:  # .train() walks every module: only when needed
            self.net.train()
        kept = self._undo.keep() if self.interrupt else None
        try:
            with self._autocast():
                logits = self.net(x)  # (B, C, H, W) -> (B, classes)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=self.config.label_smoothing)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
        except Interrupted:  # the same dropout masks, BatchNorm's averages as they were
            self._undo.restore(kept)
            raise
        return logits, loss

    def _measure_before_step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradient and weight norms per tensor, before the optimizer step (no gradient, as
        of a switched-off shortcut, counts as zero); the weights copied to a kept buffer."""
        grads = [p.grad if p.grad is not None else self._zero for p in self.params]
        grad_norms = torch.stack(torch._foreach_norm(grads, 2, dtype=self._acc))
        weight_norms = torch.stack(torch._foreach_norm(self._weights))
        torch._foreach_copy_(self._before, self._weights)
        return grad_norms, weight_norms

    def _record(self, grad_norms, weight_norms, loss, logits, y, lr: float) -> StepRecord:
        """Per-layer norms and the step's record, after the optimizer step."""
        torch._foreach_sub_(self._before, self._weights)  # now: before - after
        update_norms = torch.stack(torch._foreach_norm(self._before))
        acc = self._acc
        norms = torch.stack([grad_norms, weight_norms.to(acc), update_norms.to(acc)])  # (3, P)
        per_layer = self._layer_sums.zero_().index_add_(1, self.layer_of_param, norms.square())
        correct = (logits.argmax(1) == y).sum()
        head = torch.stack([loss.detach().to(acc), correct.to(acc)])
        packed = torch.cat([head, per_layer.sqrt().flatten()]).tolist()  # the one host sync
        loss_value, n_correct = packed[0], packed[1]
        if not math.isfinite(loss_value):
            detail = f"loss {loss_value} at lr {lr:g}"
            self.log.append_event(Event(step=self.step_count, kind="diverged", detail=detail))
            raise DivergedError(self.step_count, lr)
        n = len(self.layers)
        g, w, u = (packed[2 + k * n : 2 + (k + 1) * n] for k in range(3))
        self.seconds += (now := time.perf_counter()) - self._clock
        self._clock = now
        prev_step, prev_time = self._last_logged
        self.images_per_s = (self.step_count - prev_step) * len(y) / max(now - prev_time, 1e-9)
        self._last_logged = (self.step_count, now)
        record = StepRecord(
            step=self.step_count,
            epoch=self.epoch,
            loss=loss_value,
            accuracy=n_correct / len(y),
            lr=lr,
            grad_norms=tuple(g),
            weight_norms=tuple(w),
            update_ratios=tuple(ui / wi if wi > 0 else 0.0 for ui, wi in zip(u, w, strict=True)),
            images_per_s=self.images_per_s,
            seconds=self.seconds,
        )
        self.log.append_step(record)
        return record

    def pause_clock(self) -> None:
        """Stop counting time (the run is paused) until `resume_clock`."""
        self.seconds += time.perf_counter() - self._clock

    def resume_clock(self) -> None:
        self._clock = time.perf_counter()
        self._last_logged = (self.step_count, self._clock)

    # -- validation ---------------------------------------------------------------------

    def _check_interrupt(self) -> None:
        if self.interrupt is not None and self.interrupt():
            raise Interrupted

    def _evaluate_due(self) -> None:
        self.evaluate()  # Interrupted: still due, taken again in full at the next step
        self.eval_due = False

    @torch.no_grad()
    def evaluate(self) -> EvalRecord:
        """Loss and accuracy on the validation split, in eval mode; one host sync. Raises
        Interrupted when `interrupt` says stop between two validation batches."""
        was_training = self.net.training
        self.net.eval()
        x_all, y_all = self.data.x_val, self.data.y_val
        total_loss = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        try:
            for i in range(0, len(y_all), EVAL_BATCH):
                self._check_interrupt()
                x, y = self.prepare(x_all[i : i + EVAL_BATCH]), y_all[i : i + EVAL_BATCH]
                with self._autocast():
                    logits = self.net(x).float()
                total_loss += F.cross_entropy(logits, y, reduction="sum")
                correct += (logits.argmax(1) == y).sum()
        finally:
            self.net.train(was_training)
        n = max(len(y_all), 1)
        loss, acc = (torch.stack([total_loss, correct]) / n).tolist()
        record = EvalRecord(step=self.step_count, epoch=self.epoch, loss=loss, accuracy=acc)
        self.log.append_eval(record)
        return record


def _make_optimizer(params: list[nn.Parameter], c: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov), Adam or AdamW. Weight decay skips BN and biases for AdamW,
    as is usual; for SGD it applies to all, as in He et al. 2015."""
    if c.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov, weight_decay=c.weight_decay
        )
    if c.optimizer == "adam":
        return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)
    decay = {"params": [p for p in params if p.ndim > 1], "weight_decay": c.weight_decay}
    rest = {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0}
    return torch.optim.AdamW([decay, rest], lr=c.lr)
