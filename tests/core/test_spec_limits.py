"""Hostile and absurd specs: refused before work, with the usual readable SpecError.

Each case here once crashed (RecursionError, Python's int-conversion ValueError), took
seconds to minutes, or was accepted although the server could not run it.
"""

import dataclasses
import json

import pytest

from core.errors import ExplainedError
from core.limits import SPEC_LIMITS
from core.plan import check_memory
from core.presets import PRESETS
from core.spec import ConvSpec, NetSpec, SpecError

LIM = SPEC_LIMITS


def _doc(**over) -> dict:
    return {**PRESETS["resnet8_narrow"].spec().to_dict(), **over}


def _refused(text) -> SpecError:
    with pytest.raises(SpecError) as info:
        NetSpec.from_json(text)
    return info.value


def test_spec_errors_are_explained_errors_with_their_block():
    error = _refused(json.dumps(_doc(blocks=[{"kind": "flatten"}, {"kind": "transformer"}])))
    assert isinstance(error, ExplainedError)
    assert (error.block, error.where) == (1, "block 1")
    assert str(error).startswith("block 1: unknown kind 'transformer'; choose one of: conv,")


def test_deep_nesting_inside_a_block_is_refused_before_parsing():
    # 100,000 nested brackets inside a block: about 200 kB, under the size cap. Python's
    # parser raised RecursionError here.
    deep = "[" * 100_000 + "]" * 100_000
    text = json.dumps(_doc()).replace(
        '"blocks": [', '"blocks": [{"kind": "conv", "out_channels": ' + deep + "}, ", 1
    )
    assert len(text) < LIM.max_spec_chars
    assert str(_refused(text)) == (
        "the file: brackets nest 100,003 deep; the limit is 32; is it the right file?"
    )


def test_brackets_inside_strings_do_not_count_as_nesting():
    name = "[[[[" * 20 + '"{{{{' * 20  # 160 brackets and 20 escaped quotes in one string
    assert NetSpec.from_json(json.dumps(_doc(name=name))).name == name


def test_a_huge_file_is_refused_by_its_size_before_parsing():
    # 1.2 million blocks, 25 MB: parsing did not finish in a minute before.
    text = json.dumps(_doc(blocks=[{"kind": "flatten"}] * 1_200_000))
    assert str(_refused(text)) == (
        f"the file: it is {len(text):,} characters long; the limit is 1,000,000; "
        "is it the right file?"
    )
    assert "bytes long" in str(_refused(text.encode()))


def test_too_many_blocks_are_refused_before_any_block_is_parsed():
    # Block 0 is broken: a parser that built blocks first would name it instead.
    blocks = [{"kind": "transformer"}] + [{"kind": "flatten"}] * 10_000
    error = _refused(json.dumps(_doc(blocks=blocks)))
    assert str(error) == (
        "the network: it has 10,001 blocks; the limit is 500; remove blocks, or use "
        "bottleneck blocks to go deep with fewer of them"
    )
    assert error.block is None


def test_a_number_with_5000_digits_is_refused_readably():
    # Python's int() refuses more than 4,300 digits with a ValueError of its own.
    text = json.dumps(_doc()).replace('"num_classes": 10', '"num_classes": ' + "9" * 5000)
    assert str(_refused(text)) == (
        "the file: a number has 5,000 digits; the limit is 30; is it the right file?"
    )


def test_long_values_are_cut_short_in_messages():
    error = _refused(json.dumps(_doc(**{"x" * 100_000: 1})))
    assert str(error).startswith("the network: unknown setting 'xxxxxxxx")
    assert len(str(error)) < 200
    error = _refused(json.dumps(_doc(blocks=[{"kind": "k" * 100_000}])))
    assert len(str(error)) < 200


def test_bytes_that_are_not_utf8_are_refused():
    assert str(_refused(b"\xff\xfe{")) == ("the file: it is not UTF-8 text; save it as UTF-8 JSON")


def test_a_long_name_is_refused_at_validation():
    spec = PRESETS["resnet20"].spec()
    dataclasses.replace(spec, name="n" * LIM.max_name_chars).validate()
    with pytest.raises(SpecError) as info:
        dataclasses.replace(spec, name="n" * (LIM.max_name_chars + 1)).validate()
    assert str(info.value) == (
        "the network: the name must be text of at most 100 characters, got 101 characters; "
        "shorten it"
    )


def _convs(channels: int, count: int, side: int) -> NetSpec:
    blocks = tuple(ConvSpec(out_channels=channels) for _ in range(count))
    return NetSpec(input_shape=(3, side, side), num_classes=10, blocks=blocks)


def test_absurd_compute_is_refused_with_how_far_over_and_what_to_shrink():
    # 500 conv blocks at 512x512 passed every per-block limit before.
    spec = _convs(64, 500, 512)
    with pytest.raises(SpecError) as info:
        spec.validate()
    macs = 3 * 64 * 9 * 512 * 512 + 499 * 64 * 64 * 9 * 512 * 512 + 64 * 10
    assert f"{macs:.2g}" == "4.8e+12"
    assert str(info.value) == (
        "the network: it needs 4.8e12 mult-adds per image, 48x the limit of 1e11; use fewer "
        "or narrower blocks, downsample earlier, or use smaller images"
    )


def test_absurd_activation_memory_is_refused():
    # 2048 channels at 512x512: conv, BN and ReLU outputs of 2048 x 512 x 512 floats.
    with pytest.raises(SpecError) as info:
        _convs(2048, 1, 512).validate()
    assert str(info.value) == (
        "the network: training on one image keeps 6.0 GiB of activations, 6.0x the limit of "
        "1.0 GiB; use narrower blocks, downsample earlier (stride 2 or pooling), or use "
        "smaller images"
    )


def test_every_preset_is_within_the_compute_and_memory_caps():
    for preset in PRESETS.values():
        plan = preset.spec().validate()
        assert plan.macs <= LIM.max_macs
        assert check_memory(plan, 32) < LIM.max_batch_activation_bytes


def test_check_memory_counts_activations_and_training_state():
    plan = PRESETS["resnet50_imagenet"].spec().validate()
    per_image, state = plan.activations * 4, plan.params * 16
    assert check_memory(plan, 32) == 32 * per_image + state
    fits = LIM.max_batch_activation_bytes // per_image
    check_memory(plan, fits)
    with pytest.raises(SpecError) as info:
        check_memory(plan, fits + 1)
    assert str(info.value).endswith(f"limit; use batch size {fits} or less, or a smaller network")
    assert f"batch size {fits + 1} keeps" in str(info.value)
    assert "% over the 16.0 GiB limit" in str(info.value)


def test_check_memory_against_the_device_names_the_batch_that_fits():
    plan = PRESETS["resnet50_imagenet"].spec().validate()
    per_image, state = plan.activations * 4, plan.params * 16
    free = state + 10 * per_image
    assert check_memory(plan, 10, free) == free
    with pytest.raises(SpecError) as info:
        check_memory(plan, 64, free)
    need = state + 64 * per_image
    assert str(info.value) == (
        f"the network: training with batch size 64 needs {_gib(need)} "
        f"(activations, weights, gradients and optimizer state), {need / free:.1f}x "
        f"the {_gib(free)} memory free on the device; use batch size 10 or less, or a smaller "
        "network"
    )
    with pytest.raises(SpecError, match="even one image does not fit"):
        check_memory(plan, 1, state)


def _gib(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB"
