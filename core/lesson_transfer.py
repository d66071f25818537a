"""A lesson's transfer stage (lesson 9): a source net learns one task, then a copy of it
and a fresh net race on a second task that has few training images.

The header line `transfer: net=resnet20 source=0-4 target=5-9 subset=100 ...` names both
tasks as class ranges of one built-in dataset (`DataRequest.classes`): the images and
their size stay alike, only what the classes mean changes, so the trained body fits the
new task and only the head is new. Stage 1 trains the source net; stage 2 is
`core.transfer.transfer_race` (same seed, same batches, the only difference is where the
body starts), with the arms labelled `transferred` and `scratch` for the lesson's claims.

`run_transfer` runs both stages synchronously (the test suite, the bench); the app runs
them as two jobs (`app.lesson_jobs`). No UI here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from core import checks
from core.config import TrainConfig
from core.data import DataRequest, TensorData, load
from core.lesson_texts import LessonError
from core.presets import cifar_resnet
from core.run import Arm, Run
from core.spec import NetSpec
from core.telemetry import Snapshot
from core.transfer import MODES, transfer_race

SOURCE, TRANSFERRED, SCRATCH = "source", "transferred", "scratch"  # its arms' labels
LABELS = (SOURCE, TRANSFERRED, SCRATCH)
KEYS = {  # key -> (what it is, default)
    "net": ("plainN or resnetN", "resnet20"),
    "data": ("digits or shapes", "digits"),
    "size": ("the image side in pixels", "8"),
    "source": ("the source task's classes, e.g. 0-4", "0-4"),
    "target": ("the target task's classes, e.g. 5-9", "5-9"),
    "subset": ("the target task's training images", "100"),
    "source_steps": ("the source net's steps", "60"),
    "steps": ("steps per net on the target task", "25"),
    "batch": ("images per step", "32"),
    "lr": ("the learning rate", "0.1"),
    "mode": ("finetune or head", "finetune"),
    "seed": ("the seed of both stages", "0"),
}
CLASSES = {"digits": 10, "shapes": 6}


@dataclass(frozen=True)
class TransferStage:
    """The settings of a lesson's `transfer:` line, checked."""

    net: str
    data: str
    size: int
    source: tuple[int, ...]
    target: tuple[int, ...]
    subset: int
    source_steps: int
    steps: int
    batch: int
    lr: float
    mode: str
    seed: int

    def source_request(self) -> DataRequest:
        return DataRequest(**self._data(), classes=self.source)

    def target_request(self) -> DataRequest:
        """Few training images; validation half the pool (as many images as the training
        subset), so the accuracies compared rest on more than a handful of images."""
        return DataRequest(**self._data(), classes=self.target, subset=self.subset,
                           val_fraction=0.5)  # fmt: skip

    def _data(self) -> dict:
        n = 1200 if self.data == "shapes" else None
        return {"name": self.data, "size": self.size, "seed": self.seed, "n": n}

    def config(self, steps: int, device: str = "auto") -> TrainConfig:
        return TrainConfig(
            steps=steps,
            batch_size=self.batch,
            lr=self.lr,
            schedule="cosine",
            warmup_steps=min(20, steps // 10),
            seed=self.seed,
            eval_every=max(steps // 5, 1),
            device=device,
        )

    def source_spec(self) -> NetSpec:
        depth = int(self.net.removeprefix("plain").removeprefix("resnet"))
        channels = 3 if self.data == "shapes" else 1
        spec = cifar_resnet(
            (depth - 2) // 6,
            residual=self.net.startswith("resnet"),
            input_shape=(channels, self.size, self.size),
            num_classes=len(self.source),
        )
        return dataclasses.replace(spec, name=SOURCE)


def parse_transfer(value: str, file: str) -> TransferStage:
    """The `transfer:` line's `key=value` pairs; LessonError naming the key and the fix."""
    where = f"{file}, transfer"
    raw = {k: v[1] for k, v in KEYS.items()}
    for item in value.split():
        key, sep, val = item.partition("=")
        if not sep or key not in KEYS:
            raise LessonError(
                f"{item[:30]!r} is not one of the transfer settings",
                where=where,
                fix="write key=value with a key of: " + ", ".join(KEYS),
            )
        raw[key] = val
    net = raw["net"]
    depth = net.removeprefix("plain").removeprefix("resnet")
    if net == depth or not depth.isdigit() or (int(depth) - 2) % 6 or not 8 <= int(depth) <= 56:
        raise LessonError(f"net={net[:20]} is no plainN or resnetN", where=where,
                          fix="use e.g. net=resnet20 (N = 6n+2 from 8 to 56)")  # fmt: skip
    data = checks.choice(raw["data"], "data", CLASSES, where=where, error=LessonError)

    def num(key: str, lo, hi, whole: bool = True):
        try:
            v = int(raw[key]) if whole else float(raw[key])
        except ValueError:
            v = raw[key]
        check = checks.whole if whole else checks.number
        return check(v, key, lo, hi, where=where, error=LessonError)

    stage = TransferStage(
        net, data, num("size", 8, 32), _classes(raw["source"], data, where),
        _classes(raw["target"], data, where), num("subset", 10, 1000),
        num("source_steps", 1, 1000), num("steps", 1, 1000), num("batch", 2, 256),
        num("lr", 1e-5, 1.0, whole=False),
        checks.choice(raw["mode"], "mode", MODES, where=where, error=LessonError),
        num("seed", 0, 2**31 - 1),
    )  # fmt: skip
    if stage.batch > stage.subset:
        raise LessonError(f"batch={stage.batch} is more than the {stage.subset} target images",
                          where=where, fix=f"use batch={stage.subset} or less")  # fmt: skip
    return stage


def _classes(text: str, data: str, where: str) -> tuple[int, ...]:
    """'0-4' -> (0, 1, 2, 3, 4); '5,7,9' -> (5, 7, 9)."""
    try:
        if "-" in text:
            lo, hi = (int(p) for p in text.split("-"))
            picked = tuple(range(lo, hi + 1))
        else:
            picked = tuple(int(p) for p in text.split(","))
    except ValueError:
        picked = ()
    if (
        len(picked) < 2
        or len(set(picked)) != len(picked)
        or not all(0 <= c < CLASSES[data] for c in picked)
    ):
        raise LessonError(
            f"{text[:20]!r} is not two or more classes of {data} (0 to {CLASSES[data] - 1})",
            where=where,
            fix="write a range like 0-4 or a list like 5,7,9",
        )
    return picked


def stage_plans(stage: TransferStage | None, device: str = "auto") -> list[tuple]:
    """(label, spec, config, data request) of the three nets, for the lesson's plan; none
    without a stage."""
    if stage is None:
        return []
    source, target = stage.source_spec(), stage.source_spec()
    target = dataclasses.replace(target, num_classes=len(stage.target), name=TRANSFERRED)
    return [
        (SOURCE, source, stage.config(stage.source_steps, device), stage.source_request()),
        *((label, dataclasses.replace(target, name=label), stage.config(stage.steps, device),
           stage.target_request()) for label in (TRANSFERRED, SCRATCH)),
    ]  # fmt: skip


def race_arms(stage: TransferStage, source: nn.Module, target: TensorData) -> tuple[Arm, Arm]:
    """Stage 2's arms: the trained source net for the target task, and the same net from
    the run's seed, labelled for the lesson's claims."""
    moved, fresh = transfer_race(source, stage.source_spec(), target, stage.mode, seed=stage.seed)
    return (
        dataclasses.replace(moved, name=TRANSFERRED),
        dataclasses.replace(fresh, name=SCRATCH),
    )


def run_transfer(
    stage: TransferStage,
    *,
    device: str = "auto",
    on_step: Callable[[dict[str, Snapshot]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    logs: dict[str, Snapshot] | None = None,
) -> dict[str, Snapshot]:
    """Both stages, one after the other: the logs of `source`, `transferred`, `scratch`,
    added to `logs` (the arms' logs, so `on_step` sees every net's) and returned."""
    logs = {} if logs is None else logs
    first = Run([Arm(SOURCE, stage.source_spec())], load(stage.source_request()),
                stage.config(stage.source_steps, device))  # fmt: skip
    if _drive(first, logs, on_step, should_stop):  # stage 2, from stage 1's weights
        target = load(stage.target_request())
        arms = race_arms(stage, first.weights(SOURCE).build(first.torch_device), target)
        _drive(Run(arms, target, stage.config(stage.steps, device)), logs, on_step, should_stop)
    return logs


def _drive(run: Run, logs: dict, on_step, should_stop) -> bool:
    """Step `run` to its end (True) or until `should_stop` (False), logging each round."""
    while not run.ended:
        if should_stop is not None and should_stop():
            return False
        run.step()
        logs |= {k: t.log.snapshot() for k, t in run.trainers.items()}
        if on_step is not None:
            on_step(dict(logs))
    return True
