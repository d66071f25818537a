"""The experiments the pages and the benches run: plain-vs-residual races, He et al.'s
degradation set, and fitting a network to a dataset. Data and small functions only: no
training here, no UI.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from core.config import TrainConfig
from core.data import DataRequest, TensorData
from core.errors import ExplainedError
from core.presets import cifar_resnet
from core.spec import NetSpec, format_shape
from core.words import N_, say

NARROW = (8, 16, 32)  # a quarter of He et al.'s 16/32/64 filters: minutes on a laptop CPU
CIFAR_WIDTHS = (16, 32, 64)
SIZE = 16  # races and the degradation set train at 16x16: small, and deep enough for 3 stages
SHAPES_IMAGES = 6000  # Shapes is drawn, so a race says how many images

# label -> (n of He et al.'s 6n+2 layers, filters per stage)
RACES: dict[str, tuple[int, tuple[int, int, int]]] = {
    N_("8 layers, narrow"): (1, NARROW),
    N_("14 layers, narrow"): (2, NARROW),
    N_("20 layers, narrow"): (3, NARROW),
    N_("20 layers (CIFAR)"): (3, CIFAR_WIDTHS),
    N_("56 layers, narrow"): (9, NARROW),
    N_("56 layers (CIFAR)"): (9, CIFAR_WIDTHS),
}
DEFAULT_RACE = "20 layers, narrow"
RACE_DATA = ("digits", "shapes")  # built in: a race never waits for a download
RACE_STEPS = 300  # at 20 layers, long enough to show the effect (SHOWS_EFFECT)

# He et al. 2015, Fig. 1: 20 and 56 layers, plain and residual, on the built-in digits
# (on Shapes every net first sits at chance for longer than a CPU budget; see
# bench/degradation.py). n of 6n+2 for each depth.
DEGRADATION_DEPTHS = {20: 3, 56: 9}
DEGRADATION_DATA = "digits"
DEGRADATION_STEPS = 300


RACE_PREFIX, DEGRADATION_NAME = "Race: ", "Degradation: 20 vs 56 layers"


def is_experiment(run_name: str) -> bool:
    """Whether a run of this name was started as one of these experiments (Compare)."""
    return run_name.startswith(RACE_PREFIX) or run_name == DEGRADATION_NAME


class FitError(ExplainedError):
    """A network that does not fit the images it is asked to train on."""


@dataclass(frozen=True)
class Experiment:
    """Everything a run needs except its owner: a name, the nets, the data, the settings."""

    name: str
    specs: tuple[NetSpec, ...]
    data: DataRequest
    config: TrainConfig


def race_pair(label: str, *, input_shape=(3, SIZE, SIZE), num_classes: int = 10):
    """(plain, residual) twins of one race: the same layers, the skips off in the first."""
    n, widths = RACES[label]
    return tuple(
        cifar_resnet(
            n, residual=residual, widths=widths, input_shape=input_shape, num_classes=num_classes
        )
        for residual in (False, True)
    )


def degradation_nets(
    *, widths=NARROW, input_shape=(3, SIZE, SIZE), num_classes: int = 10
) -> tuple[NetSpec, ...]:
    """Plain-20, Plain-56, ResNet-20, ResNet-56: each residual net is its plain twin with
    the skips on, nothing else different."""
    return tuple(
        cifar_resnet(
            n, residual=residual, widths=widths, input_shape=input_shape, num_classes=num_classes
        )
        for residual in (False, True)
        for n in DEGRADATION_DEPTHS.values()
    )


def data_request(name: str, *, size: int = SIZE, seed: int = 0) -> DataRequest:
    """The data of a race or of the degradation set."""
    return DataRequest(
        name=name, size=size, seed=seed, n=SHAPES_IMAGES if name == "shapes" else None
    )


def settings(steps: int, *, seed: int = 0, lr: float = 0.1, evaluations: int = 5) -> TrainConfig:
    """He et al.'s SGD at lr 0.1, batch 128, with a short warm-up and a cosine decay, so a
    few hundred steps end with a low learning rate; `evaluations` validations in the run."""
    return TrainConfig(
        steps=steps,
        batch_size=128,
        lr=lr,
        schedule="cosine",
        warmup_steps=min(20, steps // 10),
        seed=seed,
        eval_every=max(steps // max(evaluations, 1), 1),
    )


def race(label: str, data: str, steps: int = RACE_STEPS, *, seed: int = 0) -> Experiment:
    """A plain net against its residual twin: same weights, same batches, same order."""
    return Experiment(
        f"Race: {label}",
        race_pair(label),
        data_request(data, seed=seed),
        settings(steps, seed=seed),
    )


def degradation(steps: int = DEGRADATION_STEPS, *, seed: int = 0) -> Experiment:
    """He et al.'s Fig. 1 in minutes: the four nets of `degradation_nets`, interleaved."""
    return Experiment(
        DEGRADATION_NAME,
        degradation_nets(),
        data_request(DEGRADATION_DATA, seed=seed),
        settings(steps, seed=seed),
    )


def fit_to_data(spec: NetSpec, data: TensorData) -> NetSpec:
    """`spec` with the data's input shape and number of classes, checked against them.

    Raises:
        FitError: the layers do not fit the images (e.g. too many pools for 8x8 pixels);
            the message names the net, the images and the block.
    """
    fitted = dataclasses.replace(spec, input_shape=data.input_shape, num_classes=data.num_classes)
    try:
        fitted.validate()
    except ValueError as e:  # a SpecError: say it once, with the images it did not fit
        raise FitError(
            f"{spec.name} does not fit {format_shape(data.input_shape)} images ({e})",
            fix="change it on the Build page, or pick a larger image size",
        ) from None
    return fitted


# --- what a race or the degradation run shows -------------------------------------------

# Below these a race rarely shows the lesson: at 8 or 14 layers a plain net trains as well
# as its twin, and in a hundred steps the first to leave chance is luck (a 14-layer race on
# Shapes for 100 steps ended 36.7% vs 23.1% validation accuracy, the plain net ahead).
SHOWS_EFFECT = (20, 300)  # (layers, steps)
SAME = 1.10  # final training losses within 10% of each other read as "the same"
TAIL = 0.1  # a final loss is the mean of the last 10% of logged steps (noise of one batch)


def depth_of(label: str) -> int:
    """The layers of a race (He et al.'s 6n+2)."""
    return 6 * RACES[label][0] + 2


def too_short(depth: int, steps: int) -> str | None:
    """Why a race of `depth` layers and `steps` steps may not show what skips do, or None."""
    layers, enough = SHOWS_EFFECT
    if depth >= layers and steps >= enough:
        return None
    if depth < layers and steps < enough:
        why = say(
            "{depth} layers is too shallow and {steps} steps is too short", depth=depth, steps=steps
        )
    elif depth < layers:
        why = say("{depth} layers is too shallow", depth=depth)
    else:
        why = say("{steps} steps is too short", steps=steps)
    return say(
        "{why} to show the effect: the plain net may well be ahead, and that would not "
        "mean skips do not help. Try 56 layers and 500 steps.",
        why=why,
    )


def final_loss(snapshot) -> float | None:
    """The training loss a run ends with (so far): the mean of its last TAIL of steps."""
    if not snapshot.steps:
        return None
    losses = snapshot.column("loss")
    return float(losses[-max(1, round(len(losses) * TAIL)) :].mean())


def compare_loss(name: str, loss: float, other: str, other_loss: float) -> tuple[str, int]:
    """A sentence comparing two final training losses, and the sign of the difference:
    1 if `name` ends clearly higher, -1 clearly lower, 0 within SAME of each other."""
    values = {"name": name, "other": other, "loss": loss, "other_loss": other_loss}
    if not (loss > 0 and other_loss > 0):  # 0 or NaN: no ratio to speak of
        return say(
            "{name} ends with a training loss of {loss:.3g}, {other} {other_loss:.3g}", **values
        ), 0
    ratio = loss / other_loss
    if ratio > SAME:
        return say(
            "{name} ends with a training loss {ratio:.2g}x {other}'s "
            "({loss:.3g} against {other_loss:.3g})",
            ratio=ratio,
            **values,
        ), 1
    if ratio < 1 / SAME:
        return say(
            "{name} ends with a training loss {ratio:.2g}x lower than {other}'s "
            "({loss:.3g} against {other_loss:.3g})",
            ratio=1 / ratio,
            **values,
        ), -1
    return say(
        "{name} ends within {share:.0%} of {other} ({loss:.3g} against {other_loss:.3g})",
        share=SAME - 1,
        **values,
    ), 0


def _losses(snapshots: dict) -> dict[str, float]:
    return {arm: loss for arm, s in snapshots.items() if (loss := final_loss(s)) is not None}


def degradation_verdict(snapshots: dict) -> str | None:
    """What the degradation run shows, from its training losses: Plain-56 against Plain-20,
    ResNet-56 against ResNet-20, and whether that is He et al.'s finding. None until every
    net has trained a step. Computed from the numbers, so it never claims what did not happen."""
    loss = _losses(snapshots)
    names = ("Plain-56", "Plain-20", "ResNet-56", "ResNet-20")
    if not all(n in loss for n in names):
        return None
    plain, plain_sign = compare_loss("Plain-56", loss["Plain-56"], "Plain-20", loss["Plain-20"])
    res, res_sign = compare_loss("ResNet-56", loss["ResNet-56"], "ResNet-20", loss["ResNet-20"])
    if plain_sign > 0 and res_sign <= 0:
        what = N_("this run shows the degradation, and the skips remove it (He et al., Fig. 1)")
    elif plain_sign > 0:
        what = N_("the deeper plain net trains worse, but so does the deeper residual one here")
    else:
        what = N_("this run does not show the degradation: the deeper plain net is not behind")
    return say("{plain}; {res}: {what}.", plain=plain, res=res, what=what)


def race_verdict(snapshots: dict) -> str | None:
    """What a race shows so far: the residual net's final training loss against its plain
    twin's (arms named Plain-N and ResNet-N), or None until both have trained a step."""
    loss = _losses(snapshots)
    plain = next((a for a in loss if a.startswith("Plain")), None)
    res = next((a for a in loss if a.startswith("ResNet")), None)
    if plain is None or res is None:
        return None
    text, sign = compare_loss(res, loss[res], plain, loss[plain])
    what = {
        -1: N_("the skips helped"),
        0: N_("at this depth and length the skips made little difference"),
        1: N_("the plain net is ahead in this run"),
    }[sign]
    return say("{text}: {what}.", text=text, what=what)


def verdict(name: str, snapshots: dict) -> str | None:
    """The sentence for a running or finished experiment named `name`, or None."""
    if name == DEGRADATION_NAME:
        return degradation_verdict(snapshots)
    return race_verdict(snapshots) if name.startswith(RACE_PREFIX) else None


def training_seconds(snapshots: dict) -> float:
    """A run's training time, pauses excluded: the longest clock of its arms (each arm's
    clock runs through the whole interleaved round, so the longest is the run's)."""
    return max((s.steps[-1].seconds for s in snapshots.values() if s.steps), default=0.0)


# --- what the gradient-flow sweep shows --------------------------------------------------

LEVEL = 10.0  # a first layer within 10x of the last block's gradient still learns at pace


def _flow_word(ratio: float) -> str:
    if not ratio > 0:  # 0 or NaN: nothing reached the first layer
        return N_("vanished")
    if ratio < 1 / LEVEL:
        return N_("vanishing")
    return N_("exploding") if ratio > LEVEL else N_("about level")


def flow_findings(points) -> list[str]:
    """What a depth sweep (core.analysis.depth_sweep) measured, one sentence per
    activation and BatchNorm setting, at the deepest depth with both a plain and a
    residual net: the first layer's gradient over the last block's, for each, and
    whether that is vanishing (below 1/LEVEL), about level, or exploding (above LEVEL).
    Computed from the numbers, so the page never claims what the run did not show."""
    groups: dict[tuple[str, bool], dict[int, dict[bool, float]]] = {}
    for p in points:
        by_depth = groups.setdefault((p.activation, p.batch_norm), {})
        by_depth.setdefault(p.depth, {})[p.residual] = p.flow.first_to_last
    out = []
    for (activation, bn), by_depth in sorted(groups.items()):
        paired = [d for d, r in by_depth.items() if len(r) == 2]
        if not paired:
            continue
        depth = max(paired)
        plain, residual = by_depth[depth][False], by_depth[depth][True]
        words = {
            "activation": activation,
            "depth": depth,
            "plain": plain,
            "plain_word": _flow_word(plain),
            "residual": residual,
            "residual_word": _flow_word(residual),
        }
        if bn:
            said = say(
                "{activation}, with BatchNorm, {depth} layers: the first layer gets "
                "{plain:.2g}x the last block's gradient in the plain net ({plain_word}) and "
                "{residual:.2g}x in the residual net ({residual_word}).",
                **words,
            )
        else:
            said = say(
                "{activation}, no BatchNorm, {depth} layers: the first layer gets "
                "{plain:.2g}x the last block's gradient in the plain net ({plain_word}) and "
                "{residual:.2g}x in the residual net ({residual_word}).",
                **words,
            )
        out.append(said)
    return out
