"""TrainConfig: how to train, as frozen data that round-trips through JSON.

`validate(train_size)` refuses settings that cannot work, with a message that says
which setting and what to use instead. No torch here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from core.spec import SpecError, fields_dict, parse_dataclass

CONFIG_SCHEMA = 1
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "onecycle")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")


class ConfigError(SpecError):
    """Training settings that cannot work; the message names the setting and the fix."""

    def __init__(self, problem: str):
        super().__init__(problem, where="training settings")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    optimizer: str = "sgd"
    lr: float = 0.1  # He et al. 2015 start CIFAR ResNets at 0.1 with batch 128
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4  # He et al. 2015, sec. 4.2
    schedule: str = "constant"
    milestones: tuple[float, ...] = (0.5, 0.75)  # 'step': shares of the budget (32k, 48k of 64k)
    gamma: float = 0.1  # 'step': lr multiplier at each milestone
    warmup_steps: int = 0  # linear warm-up from lr/10 (He et al. warm ResNet-110 up at 0.01)
    batch_size: int = 128
    epochs: int = 5
    steps: int | None = None  # if set, the budget in optimizer steps instead of epochs
    label_smoothing: float = 0.0
    seed: int = 0
    augment: bool = False  # random crop (pad 4) + horizontal flip, for CIFAR-like images
    log_every: int = 1  # steps between telemetry records
    eval_every: int | None = None  # steps between validations; None: once per epoch
    device: str = "auto"  # CUDA, then MPS, then CPU
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 elsewhere; bf16: everywhere
    channels_last: bool | None = None  # None: on for CUDA and CPU, off for MPS

    def __post_init__(self) -> None:
        object.__setattr__(self, "milestones", tuple(self.milestones))

    def total_steps(self, train_size: int) -> int:
        if self.steps is not None:
            return self.steps
        return self.epochs * self.steps_per_epoch(train_size)

    def steps_per_epoch(self, train_size: int) -> int:
        return max(1, math.ceil(train_size / self.batch_size))

    def validate(self, train_size: int | None = None) -> TrainConfig:
        """Raise ConfigError for the first setting that cannot work; return self."""
        _choice(self.optimizer, "optimizer", OPTIMIZERS)
        _choice(self.schedule, "schedule", SCHEDULES)
        _choice(self.device, "device", DEVICES)
        _choice(self.precision, "precision", PRECISIONS)
        _number(self.lr, "learning rate", 1e-6, 10.0, "0.1 for SGD or 0.001 for Adam")
        _number(self.momentum, "momentum", 0.0, 0.999, "0.9 is the usual choice")
        _number(self.weight_decay, "weight decay", 0.0, 0.1, "1e-4 or 5e-4 are usual")
        _number(self.gamma, "gamma", 1e-4, 1.0, "0.1 divides the lr by 10 at each milestone")
        _number(self.label_smoothing, "label smoothing", 0.0, 0.5, "0.1 is usual; 0 turns it off")
        _whole(self.batch_size, "batch size", 1, 4096, "128 is the classic choice")
        _whole(self.epochs, "epochs", 1, 1000, "5 is plenty for the built-in data")
        if self.steps is not None:
            _whole(self.steps, "steps", 1, 1_000_000, "use a few hundred for a quick run")
        _whole(self.warmup_steps, "warm-up steps", 0, 100_000, "0 turns warm-up off")
        _whole(self.seed, "seed", 0, 2**31 - 1, "any whole number; runs with one seed match")
        _whole(self.log_every, "log every", 1, 10_000, "1 logs every step")
        if self.eval_every is not None:
            _whole(self.eval_every, "evaluate every", 1, 1_000_000, "or leave it empty")
        if sorted(self.milestones) != list(self.milestones) or any(
            not 0 < m < 1 for m in self.milestones
        ):
            raise ConfigError(
                f"milestones must be increasing shares of the run between 0 and 1, got "
                f"{list(self.milestones)}; (0.5, 0.75) is He et al.'s schedule"
            )
        if self.nesterov and self.momentum == 0:
            raise ConfigError("Nesterov momentum needs a momentum above 0; set momentum to 0.9")
        if train_size is not None:
            if train_size < 1:
                raise ConfigError("the dataset has no training images")
            if self.batch_size > train_size:
                raise ConfigError(
                    f"the batch size {self.batch_size} is larger than the {train_size} "
                    f"training images; use a batch size of at most {train_size}"
                )
            if self.warmup_steps >= self.total_steps(train_size):
                raise ConfigError(
                    f"the warm-up ({self.warmup_steps} steps) is as long as the whole run "
                    f"({self.total_steps(train_size)} steps); shorten it"
                )
        return self

    def to_json(self) -> str:
        return json.dumps({"schema": CONFIG_SCHEMA, **fields_dict(self)}, indent=2)

    @classmethod
    def from_dict(cls, data: Any) -> TrainConfig:
        if not isinstance(data, dict) or data.get("schema") != CONFIG_SCHEMA:
            raise ConfigError(
                f"these are not training settings of schema {CONFIG_SCHEMA}; "
                "save them again from the Train page"
            )
        body = {k: v for k, v in data.items() if k != "schema"}
        return parse_dataclass(cls, body, "training settings")

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise ConfigError(f"the file is not valid JSON ({e.msg}, line {e.lineno})") from None


def _choice(value, name: str, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{name} {value!r} is not available; choose one of: {', '.join(choices)}")


def _number(value, name: str, lo: float, hi: float, hint: str) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not lo <= value <= hi:
        raise ConfigError(f"{name} {value!r} is out of range ({lo:g} to {hi:g}); {hint}")


def _whole(value, name: str, lo: int, hi: int, hint: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(
            f"{name} must be a whole number from {lo:,} to {hi:,}, got {value!r}; {hint}"
        )
