"""core/experiments.py: the races, the degradation set and fit_to_data, checked against
what they claim (He et al.'s depths, twins that differ by their skips alone) and against
the real planner and model."""

import dataclasses

import pytest
import torch

from core import experiments
from core.analysis import GradFlow, SweepPoint, depth_sweep
from core.data import DataRequest, load
from core.errors import ExplainedError
from core.model import build
from core.presets import PRESETS
from core.spec import NetSpec, PoolSpec
from tests.core.helpers import separable_data


def _without_skips(spec: NetSpec) -> NetSpec:
    """The spec with every skip off and the name blanked: what twins must share."""
    blocks = tuple(dataclasses.replace(b, skip=False) if b.residual else b for b in spec.blocks)
    return dataclasses.replace(spec, name="", blocks=blocks)


def _weight_layers(spec: NetSpec) -> int:
    """Convolutions and linear layers of the built net: the depth He et al. count (their
    option A shortcuts, zero-padding, have no weights)."""
    net = build(spec, seed=0)
    return sum(isinstance(m, torch.nn.Conv2d | torch.nn.Linear) for m in net.modules())


def _params(spec: NetSpec) -> int:
    return sum(p.numel() for p in build(spec, seed=0).parameters())


def test_degradation_nets_have_the_documented_depths_and_twins_share_all_but_skips():
    nets = experiments.degradation_nets()
    assert [n.name for n in nets] == ["Plain-20", "Plain-56", "ResNet-20", "ResNet-56"]
    assert [_weight_layers(n) for n in nets] == [20, 56, 20, 56]
    plain20, plain56, res20, res56 = nets
    for plain, res in ((plain20, res20), (plain56, res56)):
        assert not any(b.skip for b in plain.blocks if b.residual)
        assert all(b.skip for b in res.blocks if b.residual)
        assert _without_skips(plain) == _without_skips(res)
        assert _params(plain) == _params(res)


def test_every_race_is_a_pair_of_twins_of_its_labelled_depth():
    for label in experiments.RACES:
        plain, res = experiments.race_pair(label)
        depth = int(label.split()[0])
        assert (plain.name, res.name) == (f"Plain-{depth}", f"ResNet-{depth}")
        assert _weight_layers(plain) == depth
        assert _without_skips(plain) == _without_skips(res)


def test_the_degradation_experiment_is_the_one_the_bench_runs():
    exp = experiments.degradation()
    assert exp.specs == experiments.degradation_nets()
    assert exp.data == DataRequest(name="digits", size=16)
    assert exp.config.steps == experiments.DEGRADATION_STEPS == 300
    assert (exp.config.batch_size, exp.config.lr, exp.config.schedule) == (128, 0.1, "cosine")
    assert experiments.is_experiment(exp.name)
    assert experiments.is_experiment(experiments.race("8 layers, narrow", "shapes").name)
    assert not experiments.is_experiment("ResNet-8 narrow · Shapes")


def test_fit_to_data_gives_a_spec_that_validates_and_builds_for_the_data():
    data = load(DataRequest(name="digits", size=16))
    for spec in (*experiments.degradation_nets(), PRESETS["resnet8_narrow"].spec()):
        fitted = experiments.fit_to_data(spec, data)
        assert fitted.input_shape == data.input_shape == (1, 16, 16)
        assert fitted.num_classes == data.num_classes == 10
        fitted.validate()
        out = build(fitted, seed=0)(data.x_train[:4])
        assert out.shape == (4, 10)
        assert _without_skips(fitted) == dataclasses.replace(
            _without_skips(spec), input_shape=(1, 16, 16), num_classes=10
        )


def test_fit_to_data_says_which_net_does_not_fit_which_images():
    spec = NetSpec(
        name="too many pools", input_shape=(3, 32, 32), num_classes=10, blocks=(PoolSpec(),) * 4
    )
    with pytest.raises(ExplainedError) as e:
        experiments.fit_to_data(spec, separable_data(size=8))
    message = str(e.value)
    assert message.startswith("too many pools does not fit 3x8x8 images (block 3:")
    assert message.endswith("; change it on the Build page, or pick a larger image size")
    assert "the network:" not in message


def _point(depth, residual, ratio, activation="relu", bn=False):
    flow = GradFlow("n", ("stem", "blocks.0", "head"), (ratio, 1.0, 1.0))
    return SweepPoint(depth, residual, bn, activation, flow)


def test_flow_findings_state_what_was_measured_at_the_deepest_pair():
    points = [
        _point(20, False, 0.5),
        _point(20, True, 0.9),
        _point(56, False, 1e-9),
        _point(56, True, 2.0),
        _point(56, False, 0.0, "sigmoid"),
        _point(56, True, 1e-5, "sigmoid"),
        _point(110, True, 300.0, "sigmoid"),  # no plain twin at 110: not compared
    ]
    assert experiments.flow_findings(points) == [
        "relu, no BatchNorm, 56 layers: the first layer gets 1e-09x the last block's gradient "
        "in the plain net (vanishing) and 2x in the residual net (about level).",
        "sigmoid, no BatchNorm, 56 layers: the first layer gets 0x the last block's gradient "
        "in the plain net (vanished) and 1e-05x in the residual net (vanishing).",
    ]


def test_flow_findings_follow_the_real_sweep():
    points = depth_sweep((8, 20), batch_norm=(False,), activations=("relu",), batch=8)
    (finding,) = experiments.flow_findings(points)
    plain = next(p for p in points if p.depth == 20 and not p.residual).flow.first_to_last
    assert finding.startswith("relu, no BatchNorm, 20 layers: the first layer gets ")
    assert f"{plain:.2g}x the last block's gradient in the plain net" in finding


# --- what a race or the degradation run shows --------------------------------------------


def _log(losses, seconds_per_step: float = 0.5):
    """A snapshot whose training losses are `losses`, one step each."""
    from core.telemetry import RunLog, StepRecord

    log = RunLog(("stem", "head"))
    for i, loss in enumerate(losses, start=1):
        g = (1.0, 1.0)
        log.append_step(
            StepRecord(
                step=i,
                epoch=i / 10,
                loss=loss,
                accuracy=0.5,
                lr=0.1,
                grad_norms=g,
                weight_norms=g,
                update_ratios=g,
                seconds=i * seconds_per_step,
            )
        )
    return log.snapshot()


def _four(p20: float, p56: float, r20: float, r56: float, steps: int = 20):
    """The degradation run's four arms, each ending on its loss (the last 10%: 2 steps)."""
    ends = {"Plain-20": p20, "Plain-56": p56, "ResNet-20": r20, "ResNet-56": r56}
    return {arm: _log([2.0] * (steps - 2) + [end] * 2) for arm, end in ends.items()}


def test_final_loss_is_the_mean_of_the_last_tenth_of_the_steps():
    assert experiments.final_loss(_log([3.0] * 18 + [1.0, 2.0])) == pytest.approx(1.5)
    assert experiments.final_loss(_log([0.7])) == pytest.approx(0.7)
    assert experiments.final_loss(_log([])) is None


def test_degradation_verdict_says_what_the_numbers_show():
    shown = experiments.degradation_verdict(_four(p20=0.10, p56=0.23, r20=0.05, r56=0.052))
    assert shown == (
        "Plain-56 ends with a training loss 2.3x Plain-20's (0.23 against 0.1); "
        "ResNet-56 ends within 10% of ResNet-20 (0.052 against 0.05): this run shows the "
        "degradation, and the skips remove it (He et al., Fig. 1)."
    )


def test_degradation_verdict_says_the_honest_opposite():
    # The issue's case: ResNet-56 at 0.077 against ResNet-20's 0.0013 does not keep up.
    both = experiments.degradation_verdict(_four(p20=0.1, p56=0.3, r20=0.0013, r56=0.077))
    assert "ResNet-56 ends with a training loss 59x ResNet-20's" in both
    assert both.endswith("but so does the deeper residual one here.")
    none = experiments.degradation_verdict(_four(p20=0.3, p56=0.1, r20=0.1, r56=0.1))
    assert "Plain-56 ends with a training loss 3x lower than Plain-20's" in none
    assert none.endswith(
        "this run does not show the degradation: the deeper plain net is not behind."
    )
    assert experiments.degradation_verdict({"Plain-20": _log([1.0])}) is None  # not all arms yet


def test_race_verdict_compares_the_residual_net_with_its_twin():
    helped = experiments.race_verdict({"Plain-20": _log([1.0]), "ResNet-20": _log([0.5])})
    assert helped == (
        "ResNet-20 ends with a training loss 2x lower than Plain-20's (0.5 against 1): "
        "the skips helped."
    )
    same = experiments.race_verdict({"Plain-20": _log([1.0]), "ResNet-20": _log([1.05])})
    assert same.endswith("at this depth and length the skips made little difference.")
    behind = experiments.race_verdict({"Plain-14": _log([0.5]), "ResNet-14": _log([1.0])})
    assert behind.endswith("the plain net is ahead in this run.")
    assert experiments.race_verdict({"Plain-20": _log([1.0]), "ResNet-20": _log([])}) is None


def test_verdict_picks_the_sentence_by_the_experiment_name():
    pair = {"Plain-20": _log([1.0]), "ResNet-20": _log([0.5])}
    assert experiments.verdict("Race: 20 layers, narrow", pair).endswith("the skips helped.")
    four = _four(p20=0.1, p56=0.3, r20=0.1, r56=0.1)
    assert experiments.verdict(experiments.DEGRADATION_NAME, four).startswith("Plain-56")
    assert experiments.verdict("ResNet-8 narrow · Shapes", pair) is None


def test_too_short_names_what_is_short_and_what_to_try():
    assert experiments.too_short(56, 500) is None
    assert experiments.too_short(20, 300) is None  # the default race shows the effect
    assert experiments.too_short(14, 100) == (
        "14 layers is too shallow and 100 steps is too short to show the effect: the plain "
        "net may well be ahead, and that would not mean skips do not help. "
        "Try 56 layers and 500 steps."
    )
    assert experiments.too_short(56, 100).startswith("100 steps is too short to show")
    assert experiments.too_short(8, 1000).startswith("8 layers is too shallow to show")
    default = experiments.depth_of(experiments.DEFAULT_RACE)
    assert experiments.too_short(default, experiments.RACE_STEPS) is None
    assert [experiments.depth_of(label) for label in experiments.RACES] == [8, 14, 20, 20, 56, 56]


def test_training_seconds_is_the_longest_arm_clock():
    snaps = {"a": _log([1.0] * 4, seconds_per_step=0.5), "b": _log([1.0] * 3, 2.0)}
    assert experiments.training_seconds(snaps) == pytest.approx(6.0)
    assert experiments.training_seconds({"a": _log([])}) == 0.0
