"""A lesson's experiment: its nets and settings from the lesson file (`plan_lesson`), a
synchronous, interleaved run with the real Trainer (`run_lesson`), and the check of the
claims the lesson makes, computed from the logs (`check_*`), so a page never says what
the run did not show. No UI here.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from core import checks
from core.config import TrainConfig
from core.data import DataRequest, load
from core.lesson_transfer import run_transfer, stage_plans
from core.lessons import Claim, Lesson, LessonError
from core.model import build, summary
from core.presets import cifar_resnet, dense_residual
from core.spec import ConvSpec, Defaults, DenseSpec, FlattenSpec, NetSpec, PoolSpec, format_shape
from core.telemetry import Snapshot
from core.training import DivergedError, Trainer

MAX_STEPS = 2_000  # a lesson runs within a minute on a 2-core CPU; this is far past that


@dataclass(frozen=True)
class ArmPlan:
    """One net of a lesson, ready to train: what the job manager or `run_lesson` needs."""

    label: str
    spec: NetSpec
    config: TrainConfig
    data: DataRequest
    skips_on_at: int | None = None  # the step at which every skip is switched on
    train: bool = True


@dataclass(frozen=True)
class ClaimResult:
    text: str  # what was claimed, e.g. "train_loss plain56 > plain20"
    held: bool
    numbers: dict[str, float] = field(default_factory=dict)  # what it was decided on


@dataclass(frozen=True)
class LessonResult:
    key: str
    seconds: float
    claims: tuple[ClaimResult, ...]
    logs: dict[str, Snapshot] = field(default_factory=dict)
    details: dict = field(default_factory=dict)  # shapes, refusals, summaries

    @property
    def held(self) -> bool:
        return bool(self.claims) and all(c.held for c in self.claims)


# --- from the file to nets and settings ---------------------------------------------------


def _settings(lesson: Lesson, tiny: bool) -> dict[str, str]:
    return {**lesson.settings, **(lesson.test if tiny else {})}


def _num(s: dict, key: str, lo, hi, default, *, where: str, whole: bool = True):
    if (raw := s.get(key)) is None:
        return default
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        value = raw
    check = checks.whole if whole else checks.number
    return check(value, key, lo, hi, where=where, error=LessonError)


def net_spec(arm_net: str, options: dict, *, widths, input_shape, num_classes) -> NetSpec:
    """The spec a lesson's net name stands for, with the arm's bn/act/init options."""
    if arm_net.startswith(("plain", "resnet")) and arm_net[-1].isdigit():
        depth = int(arm_net.removeprefix("plain").removeprefix("resnet"))
        if (depth - 2) % 6 or not 8 <= depth <= 110:
            raise LessonError(
                f"{arm_net} is not a depth of 6n+2 layers from 8 to 110",
                fix="use 8, 14, 20, 32, 44, 56 or 110",
            )
        spec = cifar_resnet(
            (depth - 2) // 6,
            residual=arm_net.startswith("resnet"),
            widths=widths,
            input_shape=input_shape,
            num_classes=num_classes,
        )
    elif arm_net in ("dense_plain", "dense_residual"):
        spec = dense_residual(
            residual=arm_net == "dense_residual", input_shape=input_shape, num_classes=num_classes
        )
    else:  # small_cnn: conv, pool, conv, pool, dense; every block changes the shape
        spec = NetSpec(
            name="small CNN",
            input_shape=input_shape,
            num_classes=num_classes,
            blocks=(
                ConvSpec(out_channels=widths[0]),
                PoolSpec(),
                ConvSpec(out_channels=widths[1]),
                PoolSpec(),
                FlattenSpec(),
                DenseSpec(out_features=64),
            ),
        )
    d = spec.defaults
    defaults = Defaults(
        batch_norm=options.get("bn", "on" if d.batch_norm else "off") == "on",
        activation=options.get("act", d.activation),
        init=options.get("init", d.init),
    )
    return dataclasses.replace(spec, defaults=defaults)


def plan_lesson(lesson: Lesson, *, tiny: bool = False, device: str = "auto") -> list[ArmPlan]:
    """The arms of a lesson: its nets, their training settings and data. `tiny` applies
    the file's `test:` settings (the test suite's size). Raises LessonError."""
    s, where = _settings(lesson, tiny), f"{lesson.key}.md"
    size = _num(s, "size", 8, 64, 16, where=where)
    widths = tuple(_num({"w": w}, "w", 1, 128, 8, where=where) for w in _widths(s, where))
    steps = _num(s, "steps", 1, MAX_STEPS, 100, where=where)
    data_name = checks.choice(s.get("data", "digits"), "data", ("digits", "shapes"),
                              where=where, error=LessonError)  # fmt: skip
    seed = _num(s, "seed", 0, 2**31 - 1, 0, where=where)
    arms = []
    for arm in lesson.arms:
        o = dict(arm.options)
        subset = _num({**s, **o}, "subset", 10, 100_000, None, where=where)
        data = DataRequest(
            name=data_name,
            size=size,
            seed=seed,
            subset=subset,
            n=(1200 if subset is None else max(subset * 2, 120)) if data_name == "shapes" else None,
        )
        optimizer = o.get("optimizer", s.get("optimizer", "sgd"))
        default_lr = 0.001 if optimizer == "adam" else 0.1
        lr = _num({**s, **o}, "lr", 1e-5, 1.0, default_lr, where=where, whole=False)
        if "lr" in o:
            lr = _num(o, "lr", 1e-5, 1.0, lr, where=where, whole=False)
        config = TrainConfig(
            steps=steps,
            batch_size=_num(s, "batch", 2, 512, 64, where=where),
            lr=lr,
            optimizer=optimizer,
            schedule="cosine",
            warmup_steps=min(20, steps // 10),
            seed=seed,
            eval_every=max(steps // 5, 1),
            device=device,
        )
        at = _num(o, "skips_on_at", 0.05, 0.95, None, where=where, whole=False)
        spec = net_spec(arm.net, o, widths=widths, input_shape=(1, size, size), num_classes=10)
        if data_name == "shapes":
            spec = dataclasses.replace(spec, input_shape=(3, size, size), num_classes=6)
        arms.append(
            ArmPlan(
                arm.label,
                dataclasses.replace(spec, name=f"{arm.label}: {spec.name}"),
                config,
                data,
                None if at is None else max(1, round(at * steps)),
                o.get("train", "yes") == "yes",
            )
        )
    # a transfer stage's three nets: trained by their own jobs, not with the arms
    return arms + [ArmPlan(*p, train=False) for p in stage_plans(lesson.transfer, device)]


def _widths(s: dict, where: str) -> list[str]:
    if len(parts := s.get("widths", "8,16,32").split(",")) == 3:
        return parts
    raise LessonError("widths must be three numbers, like 8,16,32", where=where)


def job_groups(arms: list[ArmPlan]) -> list[tuple[TrainConfig, DataRequest, list[ArmPlan]]]:
    """The trained arms grouped by settings and data, in order: one job manager job per
    group (a job trains its arms on one dataset with one TrainConfig)."""
    groups: dict[tuple[TrainConfig, DataRequest], list[ArmPlan]] = {}
    for arm in arms:
        if arm.train:
            groups.setdefault((arm.config, arm.data), []).append(arm)
    return [(config, data, group) for (config, data), group in groups.items()]


# --- running -------------------------------------------------------------------------------


def run_lesson(
    lesson: Lesson,
    *,
    tiny: bool = False,
    device: str = "auto",
    on_step: Callable[[dict[str, Snapshot]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> LessonResult:
    """Run a lesson's experiment to its end and check its claims.

    Train lessons train every arm one step at a time, in turn (one seed for all, so twins
    start alike and see the same batches). `on_step` gets the logs after each round;
    `should_stop` ends the run early (the claims are then checked on what ran).
    """
    start = time.perf_counter()
    if lesson.kind in ("shapes", "shortcut"):
        check = check_shapes if lesson.kind == "shapes" else check_shortcut
        claims, details, logs = check(lesson), {}, {}
    else:
        arms = plan_lesson(lesson, tiny=tiny, device=device)
        logs, details = _train(arms, on_step, should_stop)
        if lesson.transfer is not None:  # then its two stages (lesson 9)
            mark = time.perf_counter()
            run_transfer(lesson.transfer, device=device, on_step=on_step,
                         should_stop=should_stop, logs=logs)  # fmt: skip
            details["transfer_seconds"] = time.perf_counter() - mark
        claims = check_claims(lesson.claims, arms, logs)
    return LessonResult(lesson.key, time.perf_counter() - start, tuple(claims), logs, details)


def _train(arms: list[ArmPlan], on_step, should_stop) -> tuple[dict[str, Snapshot], dict]:
    data = {a.data: load(a.data) for a in arms if a.train}
    trainers = {
        a.label: Trainer(build(a.spec, seed=a.config.seed), data[a.data], a.config)
        for a in arms
        if a.train
    }
    switch = {a.label: a.skips_on_at for a in arms}
    diverged: dict[str, str] = {}
    while any(not t.done for k, t in trainers.items() if k not in diverged):
        if should_stop is not None and should_stop():
            break
        for label, trainer in trainers.items():
            if trainer.done or label in diverged:
                continue
            if switch[label] is not None and trainer.step_count == switch[label]:
                trainer.set_skip(True)
            try:
                trainer.step()
            except DivergedError as e:
                diverged[label] = str(e)
        if on_step is not None:
            on_step({k: t.log.snapshot() for k, t in trainers.items()})
    return {k: t.log.snapshot() for k, t in trainers.items()}, {"diverged": diverged}


# --- claims --------------------------------------------------------------------------------


def metric(name: str, arm: ArmPlan, log: Snapshot | None) -> float:
    """One number of a claim (see core.lessons.METRICS); NaN when the run lacks it."""
    if name in ("params", "macs", "memory"):
        totals = summary(arm.spec, arm.config.batch_size).totals
        return float(totals[{"macs": "mult-adds", "memory": "activation MB"}.get(name, name)])
    if log is None or not log.steps:
        return math.nan
    tail = max(1, len(log.steps) // 10)
    if name in ("train_loss", "train_acc"):
        return float(np.mean(log.column("loss" if name == "train_loss" else "accuracy")[-tail:]))
    if name == "val_acc_mean":  # the area under the validation curve
        return float(np.mean([e.accuracy for e in log.evals])) if log.evals else math.nan
    if name in ("val_acc", "gap"):
        val = log.evals[-1].accuracy if log.evals else math.nan
        return val if name == "val_acc" else metric("train_acc", arm, log) - val
    g = log.matrix("grad_norms")
    last = -2 if g.shape[1] > 2 else -1  # the last block before the head
    ratios = g[:, 0] / np.maximum(g[:, last], 1e-300)
    if name == "grad_ratio_init":
        return float(ratios[0])
    if name == "grad_ratio":
        return float(np.exp(np.mean(np.log(np.maximum(ratios, 1e-300)))))
    # after a live switch of the skips: the window of w logged steps on either side
    at = next((e.step for e in log.events if e.kind == "skip"), None)
    if at is None:
        return math.nan
    steps, w = log.column("step"), max(3, len(log.steps) // 10)
    before, after = (steps <= at) & (steps > at - w), (steps > at) & (steps <= at + w)
    if name == "grad_boost":  # the first layer's gradient after, over before
        return float(np.mean(g[after, 0]) / max(np.mean(g[before, 0]), 1e-300))
    loss = log.column("loss")
    peak = float(np.max(loss[after]))
    if name == "loss_jump":
        return peak / float(np.mean(loss[before]))
    return peak / metric("train_loss", arm, log)  # loss_fall


def check_claims(
    claims: tuple[Claim, ...], arms: list[ArmPlan], logs: dict[str, Snapshot]
) -> list[ClaimResult]:
    """Each claim of a train lesson, decided on the numbers of its logs."""
    by_label = {a.label: a for a in arms}
    out = []
    for c in claims:
        left = metric(c.metric, by_label[c.arm], logs.get(c.arm))
        number = c.number
        right = (
            number if number is not None else metric(c.metric, by_label[c.other], logs.get(c.other))
        )
        held = {"<": left < right, ">": left > right, "=": math.isclose(left, right)}[c.op]
        out.append(ClaimResult(str(c), bool(held), {c.arm: left, c.other: right}))
    return out


def shape_net(lesson: Lesson) -> NetSpec:
    """The net a shapes or shortcut lesson shows (before its change)."""
    s = lesson.settings
    size = _num(s, "size", 8, 64, 16, where=f"{lesson.key}.md")
    widths = tuple(int(w) for w in _widths(s, lesson.key))
    return net_spec(
        s.get("net", "small_cnn"), {}, widths=widths, input_shape=(1, size, size), num_classes=10
    )


def _change(lesson: Lesson) -> tuple[int, str, int]:
    pairs = dict(p.split("=", 1) for p in lesson.settings.get("change", "").split() if "=" in p)
    try:
        block = int(pairs.pop("block"))
        (name, value), *rest = pairs.items()
        if rest or name not in ("stride", "kernel_size"):
            raise ValueError
        return block, name, int(value)
    except (KeyError, ValueError):
        raise LessonError(
            "change must name a block and one new stride or kernel_size",
            where=f"{lesson.key}.md, change",
            fix="write e.g. 'change: block=0 stride=2'",
        ) from None


def check_shapes(lesson: Lesson) -> list[ClaimResult]:
    """Lesson 1: changing one block's stride (or kernel) changes its output shape and
    every shape after it, and with them the dense layer's parameters."""
    spec, (block, name, value), before, after = changed_plans(lesson)
    shapes = [(a.out_shape, b.out_shape) for a, b in zip(before.blocks, after.blocks, strict=True)]
    # every feature map after the change, and the flattened vector; a dense layer's
    # width is its own setting and does not change
    dense = next((k for k, b in enumerate(spec.blocks) if isinstance(b, DenseSpec)), None)
    changed = all(a != b for a, b in shapes[block:dense])
    return [
        ClaimResult(
            f"{name}={value} at block {block} changes its output shape and every shape after it",
            changed,
            {"params before": before.params, "params after": after.params},
        ),
        ClaimResult(
            f"block {block}: {format_shape(shapes[block][0])} becomes "
            f"{format_shape(shapes[block][1])}",
            shapes[block][0] != shapes[block][1],
        ),
    ]


def check_shortcut(lesson: Lesson) -> list[ClaimResult]:
    """Lesson 6: at the first block that changes shape, an identity shortcut is refused
    with a message that names the fix; zero-pad and projection are built, and only the
    projection costs parameters."""
    spec = shape_net(lesson)
    i = next(k for k, b in enumerate(spec.blocks) if getattr(b, "stride", 1) == 2)

    def variant(kind: str) -> NetSpec:
        blocks = list(spec.blocks)
        blocks[i] = dataclasses.replace(blocks[i], shortcut=kind, skip=True)
        return dataclasses.replace(spec, blocks=tuple(blocks))

    refusal = ""
    try:
        variant("identity").validate()
    except ValueError as e:
        refusal = str(e)
    pad, proj = variant("zero_pad").validate().params, variant("projection").validate().params
    return [
        ClaimResult(
            f"an identity shortcut at block {i} is refused: {refusal}",
            "projection" in refusal and "zero-pad" in refusal,
        ),
        ClaimResult(
            "zero-pad costs no parameters, the 1x1 projection some",
            proj > pad,
            {"params zero-pad": pad, "params projection": proj},
        ),
    ]


def changed_plans(lesson: Lesson):
    """The shapes lesson's net, its change, and the plans before and after it."""
    spec = shape_net(lesson)
    block, name, value = _change(lesson)
    if not 0 <= block < len(spec.blocks) or not hasattr(spec.blocks[block], name):
        raise LessonError(f"block {block} has no {name}", where=f"{lesson.key}.md, change")
    blocks = list(spec.blocks)
    blocks[block] = dataclasses.replace(blocks[block], **{name: value})
    before, after = spec.validate(), dataclasses.replace(spec, blocks=tuple(blocks)).validate()
    return spec, (block, name, value), before, after
