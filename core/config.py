"""TrainConfig: how to train, as frozen data that round-trips through JSON.

`validate(train_size)` refuses settings that cannot work, with a message that says
which setting and what to use instead. No torch here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from core import checks
from core.errors import ExplainedError
from core.spec import SpecError, fields_dict, parse_dataclass
from core.words import N_

CONFIG_SCHEMA = 1
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "onecycle")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")
# The most optimizer steps one run may take, whether set as steps or implied by epochs x
# batches per epoch: a million steps of a tiny net is days on a CPU, and one run must not
# hold a training slot of a shared server for longer than a class lasts many times over.
MAX_STEPS = 1_000_000


class ConfigError(ExplainedError):
    """Training settings that cannot work; the message names the setting and the fix."""

    def __init__(self, problem: str, *, where: str | None = None, fix: str | None = None):
        super().__init__(problem, where=where or N_("training settings"), fix=fix)


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
        """Raise ConfigError for the first setting that cannot work; return self.

        With `train_size`, also the settings that depend on the dataset: the batch size,
        the warm-up and the number of steps the epochs imply.
        """
        for value, name, options in (
            (self.optimizer, N_("optimizer"), OPTIMIZERS),
            (self.schedule, N_("schedule"), SCHEDULES),
            (self.device, N_("device"), DEVICES),
            (self.precision, N_("precision"), PRECISIONS),
        ):
            checks.choice(value, name, options, error=ConfigError)
        for value, name, lo, hi, fix in (
            (self.lr, N_("learning rate"), 1e-6, 10.0, N_("0.1 for SGD or 0.001 for Adam")),
            (self.momentum, N_("momentum"), 0.0, 0.999, N_("0.9 is the usual choice")),
            (self.weight_decay, N_("weight decay"), 0.0, 0.1, N_("1e-4 or 5e-4 are usual")),
            (self.gamma, N_("gamma"), 1e-4, 1.0, N_("0.1 divides the lr by 10 at each milestone")),
            (
                self.label_smoothing,
                N_("label smoothing"),
                0.0,
                0.5,
                N_("0.1 is usual; 0 turns it off"),
            ),
        ):
            checks.number(value, name, lo, hi, fix=fix, error=ConfigError)
        for value, name, lo, hi, fix in (
            (self.batch_size, N_("batch size"), 1, 4096, N_("128 is the classic choice")),
            (self.epochs, N_("epochs"), 1, 1000, N_("5 is plenty for the built-in data")),
            (self.steps, N_("steps"), 1, MAX_STEPS, N_("use a few hundred for a quick run")),
            (self.warmup_steps, N_("warm-up steps"), 0, 100_000, N_("0 turns warm-up off")),
            (self.seed, N_("seed"), 0, 2**31 - 1, N_("any whole number; runs with one seed match")),
            (self.log_every, N_("log every"), 1, 10_000, N_("1 logs every step")),
            (self.eval_every, N_("evaluate every"), 1, MAX_STEPS, N_("or leave it empty")),
        ):
            optional = name in ("steps", "evaluate every")  # None: by epochs, once an epoch
            if not (optional and value is None):
                checks.whole(value, name, lo, hi, fix=fix, error=ConfigError)
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
            self._check_budget(train_size)
        return self

    def _check_budget(self, train_size: int) -> None:
        """The steps the settings imply fit the cap, and the warm-up fits in them."""
        total = self.total_steps(train_size)
        if total > MAX_STEPS:
            raise ConfigError(
                f"{self.epochs:,} epochs of {self.steps_per_epoch(train_size):,} batches are "
                f"{total:,} steps, more than the {MAX_STEPS:,} one run may take",
                fix="use fewer epochs or a larger batch size",
            )
        if self.warmup_steps >= total:
            raise ConfigError(
                f"the warm-up ({self.warmup_steps} steps) is as long as the whole run "
                f"({total} steps); shorten it"
            )

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
        try:
            return parse_dataclass(cls, body, "training settings")
        except SpecError as e:  # the shared parser speaks of specs; these are settings
            raise ConfigError(e.problem) from None

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise ConfigError(f"the file is not valid JSON ({e.msg}, line {e.lineno})") from None
