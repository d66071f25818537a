"""One planner per block kind: each checks its block against the limits and works out its
output shape, parameters, mult-adds and activations as a `Layer` that carries the block.

`core.plan` walks a network with them (`PLANNERS`, a dict from spec class to function);
a new block kind adds one planner here and one builder in `core.model`. No torch here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.layers import Layer, Site, add_costs, as_costs, conv_cost, linear_cost
from core.spec import (
    IDENTITY,
    NO_SHORTCUT,
    POOL_MODES,
    PROJECTION,
    SHORTCUTS,
    ZERO_PAD,
    BasicSpec,
    BlockSpec,
    BottleneckSpec,
    ConvResidualSpec,
    ConvSpec,
    DenseResidualSpec,
    DenseSpec,
    DropoutSpec,
    FlattenSpec,
    HeadSpec,
    PoolSpec,
    Shape,
    StemSpec,
    format_shape,
)
from core.words import N_, say

# --- one planner per block kind ----------------------------------------------------------


def _pool(block: PoolSpec, at: Site) -> Layer:
    at.needs_image("pooling")
    at.choice(block.mode, "mode", POOL_MODES)
    at.kernel(block.kernel_size)
    stride = block.kernel_size if block.stride is None else block.stride
    at.stride(stride)
    at.whole(
        block.padding,
        "padding",
        0,
        block.kernel_size // 2,
        "padding can be at most half the kernel size",
    )
    oh, ow = at.shrink(block.kernel_size, stride, block.padding, "pool")
    c = at.shape[0]
    return at.layer(block, out_shape=(c, oh, ow), activations=c * oh * ow)


def _dropout(block: DropoutSpec, at: Site) -> Layer:
    at.share(block.p, "p")
    n = 1
    for d in at.shape:
        n *= d
    return at.layer(block, out_shape=at.shape, activations=n)


def _flatten(block: FlattenSpec, at: Site) -> Layer:
    if len(at.shape) == 1:
        raise at.error("the input is already flat; remove this flatten block")
    c, h, w = at.shape
    return at.layer(block, out_shape=(c * h * w,))  # a view: no new memory


def _conv_block(block: ConvSpec, at: Site) -> Layer:
    s = at.resolve(block)
    at.needs_image("convolution")
    at.channels(block.out_channels)
    at.kernel(block.kernel_size)
    at.stride(block.stride)
    k = block.kernel_size
    oh, ow = at.shrink(k, block.stride, k // 2, "convolution")
    cost = conv_cost(at.shape[0], block.out_channels, k, oh * ow, s["batch_norm"])
    return at.layer(block, out_shape=(block.out_channels, oh, ow), **as_costs(cost), **s)


def _dense(block: DenseSpec, at: Site) -> Layer:
    s = at.resolve(block)
    at.needs_flat("dense")
    fout = block.out_features
    at.whole(fout, "out_features", 1, at.limits.max_features, "use for example 128 or 1024")
    cost = linear_cost(at.shape[0], fout, s["batch_norm"])
    return at.layer(block, out_shape=(fout,), **as_costs(cost), **s)


def _dense_residual(block: DenseResidualSpec, at: Site) -> Layer:
    s = at.resolve(block)
    at.needs_flat("dense residual")
    for name in ("width", "bottleneck"):
        hint = "the classic block uses width 1024 and bottleneck 512"
        at.whole(getattr(block, name), name, 1, at.limits.max_features, hint)
    at.share(block.dropout, "dropout")
    at.flag(block.skip, "skip")
    w, b, bn = block.width, block.bottleneck, s["batch_norm"]
    cost = add_costs(
        linear_cost(at.shape[0], w, bn), (0, 0, w), linear_cost(w, b, bn), linear_cost(b, w, bn)
    )
    return at.layer(block, out_shape=(w,), shortcut=IDENTITY, **as_costs(cost), **s)


def _basic(block: BasicSpec, at: Site) -> Layer:
    at.needs_image(block.kind)
    at.channels(block.out_channels)
    cout = block.out_channels

    def branch(cin: int, hw: int, bn: bool):  # 3x3 (strided) -> 3x3
        return add_costs(conv_cost(cin, cout, 3, hw, bn), conv_cost(cout, cout, 3, hw, bn))

    return _conv_residual(block, at, cout, branch)


def _bottleneck(block: BottleneckSpec, at: Site) -> Layer:
    at.needs_image(block.kind)
    at.channels(block.width, "width")
    at.whole(block.expansion, "expansion", 1, 8, "ResNet-50 uses 4")
    mid, cout = block.width, block.width * block.expansion
    at.channels(cout, "width x expansion")
    in_hw = at.shape[1] * at.shape[2]

    def branch(cin: int, hw: int, bn: bool):  # 1x1 -> 3x3 (strided) -> 1x1
        return add_costs(
            conv_cost(cin, mid, 1, in_hw, bn),
            conv_cost(mid, mid, 3, hw, bn),
            conv_cost(mid, cout, 1, hw, bn),
        )

    return _conv_residual(block, at, cout, branch)


def _conv_residual(block: ConvResidualSpec, at: Site, cout: int, branch: Callable) -> Layer:
    """What basic and bottleneck blocks share: stride, shape, shortcut and its cost."""
    s = at.resolve(block)
    at.stride(block.stride)
    oh, ow = at.shrink(3, block.stride, 1, "convolution")
    out = (cout, oh, ow)
    shortcut = _shortcut(block, at, out)
    cin, bn = at.shape[0], s["batch_norm"]
    cost = branch(cin, oh * ow, bn)
    if shortcut == PROJECTION:  # 1x1 conv (stride s) + BN, no activation
        cost = add_costs(cost, conv_cost(cin, cout, 1, oh * ow, bn, act=False))
    return at.layer(block, out_shape=out, shortcut=shortcut, **as_costs(cost), **s)


def _shortcut(block: ConvResidualSpec, at: Site, out_shape: Shape) -> str:
    """Which shortcut a residual block gets (He et al. 2015, sec. 3.3, options A and B)."""
    at.choice(block.shortcut, "shortcut", SHORTCUTS)
    at.flag(block.skip, "skip")
    in_shape = at.shape
    if block.shortcut == PROJECTION:
        return PROJECTION
    if in_shape == out_shape:
        return IDENTITY
    if block.shortcut == "auto":
        return PROJECTION  # option B: always valid, torchvision's choice
    if block.shortcut == IDENTITY:
        if not block.skip:
            return NO_SHORTCUT
        raise at.error(
            say(
                "the skip goes from {a} to {b}", a=format_shape(in_shape), b=format_shape(out_shape)
            ),
            N_("choose the 'projection' or 'zero-pad' shortcut, or turn the skip off"),
        )
    # zero_pad (option A): subsample by the stride, then pad the new channels with zeros.
    if out_shape[0] < in_shape[0]:
        if not block.skip:
            return NO_SHORTCUT
        raise at.error(
            say(
                "a zero-pad shortcut can only add channels, but this block goes from "
                "{a} to {b} channels",
                a=in_shape[0],
                b=out_shape[0],
            ),
            N_("choose the 'projection' shortcut, or turn the skip off"),
        )
    return ZERO_PAD


PLANNERS: dict[type[BlockSpec], Callable[[Any, Site], Layer]] = {
    ConvSpec: _conv_block,
    PoolSpec: _pool,
    BasicSpec: _basic,
    BottleneckSpec: _bottleneck,
    DropoutSpec: _dropout,
    FlattenSpec: _flatten,
    DenseSpec: _dense,
    DenseResidualSpec: _dense_residual,
}


def plan_block(block: BlockSpec, at: Site) -> Layer:
    planner = PLANNERS.get(type(block))
    if planner is None:
        raise at.error(f"unknown kind of block {type(block).__name__}")
    return planner(block, at)


def plan_stem(stem: StemSpec, at: Site) -> Layer:
    at.channels(stem.out_channels)
    at.kernel(stem.kernel_size)
    at.stride(stem.stride)
    s = at.resolve(stem)
    k, cout = stem.kernel_size, stem.out_channels
    oh, ow = at.shrink(k, stem.stride, k // 2, "convolution")
    params, macs, acts = conv_cost(at.shape[0], cout, k, oh * ow, s["batch_norm"])
    if stem.pool:  # ImageNet stem: 3x3 max pool, stride 2, padding 1
        oh, ow = at.shrink(3, 2, 1, "max pool", (cout, oh, ow))
        acts += cout * oh * ow
    return at.layer(stem, "stem", out_shape=(cout, oh, ow), **as_costs((params, macs, acts)), **s)


def plan_head(head: HeadSpec, at: Site, classes: int) -> Layer:
    at.choice(head.pool, "pool", POOL_MODES)
    at.share(head.dropout, "dropout")
    features = at.shape[0]
    acts = features if len(at.shape) == 3 else 0  # the global pool's output
    acts += features if head.dropout > 0 else 0
    params, macs, fc_acts = linear_cost(features, classes, bn=False, act=False)
    cost = as_costs((params, macs, acts + fc_acts))
    return at.layer(head, "head", out_shape=(classes,), init=at.defaults.init, **cost)
