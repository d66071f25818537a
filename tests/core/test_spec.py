"""The spec as data: JSON round-trips, parse errors and every validation message."""

import dataclasses
import json

import pytest

from core.limits import SPEC_LIMITS
from core.presets import PRESETS
from core.spec import (
    BasicSpec,
    BottleneckSpec,
    ConvSpec,
    Defaults,
    DenseResidualSpec,
    DenseSpec,
    DropoutSpec,
    FlattenSpec,
    HeadSpec,
    NetSpec,
    PoolSpec,
    SpecError,
    StemSpec,
)


@pytest.mark.parametrize("key", sorted(PRESETS))
def test_every_preset_round_trips_through_json(key):
    spec = PRESETS[key].spec()
    text = spec.to_json()
    back = NetSpec.from_json(text)
    assert back == spec
    assert back.to_json() == text
    assert json.loads(text)["schema"] == 1


def test_round_trip_keeps_every_kind_and_override():
    spec = NetSpec(
        name="all kinds",
        input_shape=(3, 32, 32),
        num_classes=5,
        stem=StemSpec(out_channels=8, kernel_size=5, stride=1, pool=True, activation="tanh"),
        blocks=(
            ConvSpec(out_channels=8, kernel_size=3, batch_norm=False, init="xavier"),
            PoolSpec(mode="avg", kernel_size=2, stride=1, padding=1),
            BasicSpec(out_channels=16, stride=2, shortcut="zero_pad", zero_init_last_bn=True),
            BottleneckSpec(width=4, stride=1, expansion=4, skip=False, shortcut="projection"),
            DropoutSpec(p=0.25),
            FlattenSpec(),
            DenseSpec(out_features=64, activation="gelu", init="small_normal"),
            DenseResidualSpec(width=64, bottleneck=32, dropout=0.1, skip=False),
        ),
        head=HeadSpec(pool="max", dropout=0.2),
        defaults=Defaults(batch_norm=True, activation="relu", init="default"),
    )
    assert NetSpec.from_json(spec.to_json()) == spec
    spec.validate()


def test_specs_are_frozen_and_keyword_only():
    spec = PRESETS["resnet20"].spec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.num_classes = 3
    with pytest.raises(TypeError):
        ConvSpec(16)  # positional arguments are refused


def _doc(**over):
    base = PRESETS["resnet8_narrow"].spec().to_dict()
    base.update(over)
    return base


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("[1, 2]", "must be a JSON object"),
        ('{"schema": 1, ', "not valid JSON (line 1"),
        (_doc(schema=7), "schema 7"),
        (_doc(colour="red"), "unknown setting 'colour'"),
        (_doc(input_shape="3x32x32"), "'input_shape' must be a list of whole numbers"),
        (_doc(num_classes=2.5), "'num_classes' must be a whole number"),
        (_doc(blocks=[{"kind": "transformer"}]), "block 0: unknown kind 'transformer'"),
        (_doc(blocks=[{"out_channels": 4}]), "block 0: each block must be a JSON object"),
        (
            _doc(blocks=[{"kind": "conv", "out_channels": 4}, {"kind": "conv", "chanels": 4}]),
            "block 1: unknown setting 'chanels'",
        ),
        (_doc(blocks=[{"kind": "conv", "out_channels": "16"}]), "'out_channels' must be a whole"),
        (_doc(blocks=[{"kind": "basic", "skip": "yes"}]), "'skip' must be true or false"),
        (_doc(blocks=[{"kind": "conv"}]), "block 0: missing setting 'out_channels'"),
        (_doc(stem={"out_channels": 8, "pool": 1}), "the stem: 'pool' must be true or false"),
    ],
)
def test_parse_errors_name_the_place(doc, message):
    text = doc if isinstance(doc, str) else json.dumps(doc)
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace("[", r"\[")):
        NetSpec.from_json(text)


def _net(*blocks, shape=(3, 32, 32), stem=None, **kw):
    return NetSpec(
        input_shape=shape, num_classes=kw.pop("num_classes", 10), stem=stem, blocks=blocks, **kw
    )


LIM = SPEC_LIMITS


@pytest.mark.parametrize(
    ("spec", "block", "message"),
    [
        (
            _net(
                ConvSpec(out_channels=16), BasicSpec(out_channels=32, stride=2, shortcut="identity")
            ),
            1,
            "block 1: the skip goes from 16x32x32 to 32x16x16; choose the 'projection' or "
            "'zero-pad' shortcut, or turn the skip off",
        ),
        (
            _net(ConvSpec(out_channels=32), BasicSpec(out_channels=16, shortcut="zero_pad")),
            1,
            "block 1: a zero-pad shortcut can only add channels, but this block goes from 32 "
            "to 16 channels",
        ),
        (
            _net(*[PoolSpec() for _ in range(6)], shape=(3, 16, 16)),
            4,
            "block 4: a 2x2 pool with stride 2 turns a 1x1 input into nothing",
        ),
        (
            _net(ConvSpec(out_channels=8, kernel_size=7), shape=(3, 4, 4)),
            None,
            None,  # 'same' padding: a 7x7 conv on 4x4 keeps 4x4, no error
        ),
        (
            _net(ConvSpec(out_channels=8), DenseSpec(out_features=10)),
            1,
            "block 1: a dense layer needs a flat input but gets 8x32x32; add a 'flatten' block",
        ),
        (
            _net(FlattenSpec(), ConvSpec(out_channels=8)),
            1,
            "block 1: a convolution block needs an image input (channels x height x width) "
            "but gets 3072 features; move it before the flatten block",
        ),
        (
            _net(FlattenSpec(), FlattenSpec()),
            1,
            "block 1: the input is already flat; remove this flatten block",
        ),
        (
            _net(ConvSpec(out_channels=0)),
            0,
            "block 0: out_channels must be a whole number from 1 to 2,048, got 0; "
            "use for example 16 or 64",
        ),
        (_net(ConvSpec(out_channels=-4)), 0, "got -4"),
        (_net(ConvSpec(out_channels=4096)), 0, "from 1 to 2,048, got 4096"),
        (_net(BottleneckSpec(width=1024)), 0, "width x expansion must be a whole number"),
        (_net(ConvSpec(out_channels=8, stride=0)), 0, "stride must be a whole number from 1"),
        (_net(ConvSpec(out_channels=8, kernel_size=31)), 0, "kernel_size must be a whole"),
        (
            _net(ConvSpec(out_channels=8, activation="swish")),
            0,
            "activation 'swish' is not available; choose one of: relu, tanh, sigmoid, gelu",
        ),
        (_net(ConvSpec(out_channels=8, init="orthogonal")), 0, "init 'orthogonal'"),
        (_net(BasicSpec(out_channels=3, shortcut="magic")), 0, "shortcut 'magic'"),
        (_net(PoolSpec(mode="median")), 0, "mode 'median'"),
        (_net(PoolSpec(kernel_size=2, padding=2)), 0, "padding must be a whole number from 0"),
        (
            _net(DropoutSpec(p=1.0)),
            0,
            "block 0: p (the share of activations dropped) must be a number at least 0 and "
            "below 1, got 1.0; 0.5 is the classic choice",
        ),
        (
            _net(FlattenSpec(), DenseResidualSpec(dropout=-0.1)),
            1,
            "dropout (the share of activations dropped) must be a number at least 0",
        ),
        (_net(FlattenSpec(), DenseSpec(out_features=100_000)), 1, "out_features must be"),
        (
            _net(*[ConvSpec(out_channels=4) for _ in range(LIM.max_blocks + 1)]),
            None,
            f"the network: it has {LIM.max_blocks + 1} blocks; the limit is {LIM.max_blocks}",
        ),
        (_net(shape=(3, 1024, 64)), None, "the input is 1024x64 pixels; the limit is 512x512"),
        (_net(shape=(7, 32, 32)), None, "the input has 7 channels; the limit is 4"),
        (_net(shape=(3, 32)), None, "the input shape must be three positive numbers"),
        (_net(num_classes=1), None, "num_classes must be a whole number from 2 to 1,000, got 1"),
        (
            _net(
                FlattenSpec(),
                DenseSpec(out_features=8192),
                DenseSpec(out_features=8192),
                DenseSpec(out_features=8192),
                shape=(4, 512, 512),
            ),
            None,
            "parameters; the limit is 150,000,000. A dense layer right after flattening",
        ),
        (
            _net(stem=StemSpec(out_channels=0)),
            None,
            "the stem: out_channels must be a whole number from 1 to 2,048, got 0",
        ),
        (_net(head=HeadSpec(pool="median")), None, "the head: pool 'median'"),
        (_net(defaults=Defaults(activation="softplus")), None, "the defaults: activation"),
    ],
)
def test_every_validation_message(spec, block, message):
    if message is None:
        spec.validate()
        return
    with pytest.raises(SpecError) as info:
        spec.validate()
    assert message in str(info.value)
    assert info.value.block == block


def test_skip_off_lifts_the_shortcut_requirement():
    spec = _net(
        ConvSpec(out_channels=16),
        BasicSpec(out_channels=32, stride=2, shortcut="identity", skip=False),
    )
    plan = spec.validate()
    assert plan.blocks[1].shortcut == "none"
    assert plan.blocks[1].out_shape == (32, 16, 16)


@pytest.mark.parametrize(
    ("shortcut", "same_shape", "expected"),
    [
        ("auto", True, "identity"),
        ("auto", False, "projection"),
        ("zero_pad", True, "identity"),
        ("zero_pad", False, "zero_pad"),
        ("projection", True, "projection"),
        ("projection", False, "projection"),
        ("identity", True, "identity"),
    ],
)
def test_shortcut_resolution(shortcut, same_shape, expected):
    stride, width = (1, 16) if same_shape else (2, 32)
    spec = _net(
        ConvSpec(out_channels=16), BasicSpec(out_channels=width, stride=stride, shortcut=shortcut)
    )
    assert spec.validate().blocks[1].shortcut == expected


def test_with_skips_switches_every_residual_block_only():
    spec = PRESETS["resnet20"].spec()
    plain = spec.with_skips(False)
    assert all(not b.skip for b in plain.blocks)
    assert (spec.name, plain.name) == ("ResNet-20", "Plain-20")
    assert plain == PRESETS["plain20"].spec()
    dense = PRESETS["dense_residual"].spec().with_skips(False)
    assert dense == PRESETS["dense_plain"].spec()
    assert plain.with_skips(True) == spec
    assert plain.validate().params == spec.validate().params
