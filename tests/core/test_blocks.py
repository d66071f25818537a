"""Blocks: one answer to "is it residual", feature maps where the spec says so, and the
source the Build page quotes."""

import difflib

import pytest
import torch

from core.blocks import (
    BasicBlock,
    BottleneckBlock,
    DenseResidualBlock,
    ResidualBlock,
    plain_forward_source,
    residual_forward_source,
)
from core.model import build
from core.planners import PLANNERS
from core.spec import BLOCK_KINDS
from tests.core.test_model import every_kind_spec


def test_every_kind_has_a_planner_and_the_spec_answers_is_it_residual():
    spec = every_kind_spec()
    assert set(PLANNERS) == set(BLOCK_KINDS.values())
    assert {type(b) for b in spec.blocks} == set(BLOCK_KINDS.values())  # every kind is here
    net = build(spec, seed=0)
    plan = spec.validate()
    for block, module, layer in zip(spec.blocks, net.blocks, plan.blocks, strict=True):
        assert isinstance(module, ResidualBlock) == block.residual == layer.residual
        assert layer.spec is block
        assert (layer.skip is None) == (not block.residual)
    assert net.residual_indices() == [i for i, b in enumerate(spec.blocks) if b.residual]


def test_feature_map_kinds_are_exactly_the_blocks_that_output_images():
    spec = every_kind_spec()
    net = build(spec, seed=0).eval()
    outputs = {}
    for i, module in enumerate(net.blocks):
        module.register_forward_hook(lambda m, a, out, i=i: outputs.__setitem__(i, out.dim()))
    net(torch.randn(2, *spec.input_shape))
    for i, block in enumerate(spec.blocks):
        if block.feature_map:
            assert outputs[i] == 4, block.kind
        elif block.kind in ("flatten", "dense", "dense_residual"):
            assert outputs[i] == 2, block.kind


@pytest.mark.parametrize("block", [BasicBlock, BottleneckBlock, DenseResidualBlock])
def test_the_plain_source_is_the_real_source_without_the_shortcut_line(block):
    real, plain = residual_forward_source(block), plain_forward_source(block)
    diff = list(difflib.ndiff(real.splitlines(), plain.splitlines()))
    removed = [line[2:].strip() for line in diff if line.startswith("- ")]
    added = [line for line in diff if line.startswith("+ ")]
    assert removed[0] == "if self.skip:"
    assert removed[1].startswith("out = out + self.shortcut(x)")
    assert (len(removed), added) == (2, [])
    assert "self.shortcut" not in plain and "self.skip" not in plain


def test_the_residual_forward_is_one_op_per_line_as_the_paper_draws_it():
    lines = [line.strip() for line in residual_forward_source(BasicBlock).splitlines()]
    ops = [line.split("#")[0].strip() for line in lines[1:]]
    assert ops == [
        "out = self.conv1(x)",
        "out = self.bn1(out)",
        "out = self.act1(out)",
        "out = self.conv2(out)",
        "out = self.bn2(out)",
        "if self.skip:",
        "out = out + self.shortcut(x)",
        "out = self.act2(out)",
        "return out",
    ]
