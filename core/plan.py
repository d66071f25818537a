"""Check a NetSpec and work out, block by block, what will be built.

`make_plan` infers every shape, resolves inherited settings and shortcuts, and counts
parameters, multiply-adds and activations analytically. `core.model` builds from the
plan and `summary` formats it, so the two can never disagree. No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.limits import SPEC_LIMITS, SpecLimits
from core.spec import (
    ACTIVATIONS,
    INITS,
    POOL_MODES,
    SHORTCUTS,
    BasicSpec,
    BlockSpec,
    BottleneckSpec,
    ConvSpec,
    DenseResidualSpec,
    DenseSpec,
    DropoutSpec,
    FlattenSpec,
    HeadSpec,
    NetSpec,
    PoolSpec,
    Shape,
    SpecError,
    StemSpec,
    _Layered,
    _Residual,
    format_shape,
)

# Shortcut kinds once resolved. "none": the skip is off and this block could not take
# one without changing its shortcut setting.
IDENTITY, ZERO_PAD, PROJECTION, NO_SHORTCUT = "identity", "zero_pad", "projection", "none"


_SHORTCUT_WORDS = {
    "identity": "identity",
    "zero_pad": "zero-pad (A)",
    "projection": "1x1 projection (B)",
    NO_SHORTCUT: "none",
}


@dataclass(frozen=True, kw_only=True)
class Layer:
    """One block (or the stem or head) as it will be built.

    `params`, `macs` and `activations` are per sample; `activations` counts the output
    elements of every layer (conv, BN, activation, pool, linear, dropout), which is what
    autograd keeps for the backward pass.
    """

    name: str  # module path: "stem", "blocks.3", "head"
    kind: str
    index: int | None
    in_shape: Shape
    out_shape: Shape
    batch_norm: bool = False
    activation: str = ""
    init: str = ""
    skip: bool | None = None  # None: not a residual block
    shortcut: str = ""  # resolved: identity, zero_pad, projection, none ("" if n/a)
    zero_init_last_bn: bool = False
    params: int = 0
    macs: int = 0
    activations: int = 0


@dataclass(frozen=True)
class Plan:
    spec: NetSpec
    stem: Layer | None
    blocks: tuple[Layer, ...]
    head: Layer

    @property
    def layers(self) -> tuple[Layer, ...]:
        return ((self.stem,) if self.stem else ()) + self.blocks + (self.head,)

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def activations(self) -> int:
        return sum(layer.activations for layer in self.layers)


# --- per-layer accounting ----------------------------------------------------------------


def _conv(cin: int, cout: int, k: int, out_hw: int, bn: bool, act: bool = True):
    """params, macs, activation elements of conv(k) -> [BN] -> [act]."""
    params = cin * cout * k * k + (2 * cout if bn else cout)  # BN replaces the bias
    macs = cin * cout * k * k * out_hw
    acts = cout * out_hw * (1 + bn + act)
    return params, macs, acts


def _linear(fin: int, fout: int, bn: bool, act: bool = True):
    params = fin * fout + (2 * fout if bn else fout)
    return params, fin * fout, fout * (1 + bn + act)


def _add(*costs):
    return tuple(sum(c) for c in zip(*costs, strict=True))


def _out_side(side: int, k: int, s: int, pad: int) -> int:
    return (side + 2 * pad - k) // s + 1


# --- checks ------------------------------------------------------------------------------


def _check_int(value, name: str, lo: int, hi: int, where: str, block: int | None, hint: str):
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise SpecError(
            f"{name} must be a whole number from {lo} to {hi}, got {value!r}; {hint}",
            block=block,
            where=where,
        )


def _check_choice(value, name: str, choices, where: str, block: int | None):
    if value is not None and value not in choices:
        raise SpecError(
            f"{name} {value!r} is not available; choose one of: {', '.join(choices)}",
            block=block,
            where=where,
        )


def _check_p(value, name: str, where: str, block: int | None):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
        raise SpecError(
            f"{name} is the share of activations dropped and must be at least 0 and below 1,"
            f" got {value!r}; 0.5 is the classic choice",
            block=block,
            where=where,
        )


def _needs_image(shape: Shape, kind: str, where: str, block: int | None):
    if len(shape) != 3:
        raise SpecError(
            f"a {kind} block needs an image input (channels x height x width) but gets "
            f"{format_shape(shape)}; move it before the flatten block",
            block=block,
            where=where,
        )


def _needs_flat(shape: Shape, kind: str, where: str, block: int | None):
    if len(shape) != 1:
        raise SpecError(
            f"a {kind} layer needs a flat input but gets {format_shape(shape)}; "
            "add a 'flatten' block before it",
            block=block,
            where=where,
        )


def _shrink(shape: Shape, k: int, s: int, pad: int, what: str, where: str, block):
    _, h, w = shape
    oh, ow = _out_side(h, k, s, pad), _out_side(w, k, s, pad)
    if oh < 1 or ow < 1:
        raise SpecError(
            f"a {k}x{k} {what} with stride {s} turns a {h}x{w} input into nothing; use a "
            "smaller kernel or stride, remove a downsampling block, or use a larger input",
            block=block,
            where=where,
        )
    return oh, ow


# --- the plan ----------------------------------------------------------------------------


def make_plan(spec: NetSpec, limits: SpecLimits = SPEC_LIMITS) -> Plan:
    """Validate `spec` and describe every layer. Raises SpecError at the first problem."""
    _check_network(spec, limits)
    shape: Shape = spec.input_shape
    stem = None
    if spec.stem is not None:
        stem = _plan_stem(spec, spec.stem, shape, limits)
        shape = stem.out_shape
    blocks = []
    for i, block in enumerate(spec.blocks):
        layer = _plan_block(spec, i, block, shape, limits)
        blocks.append(layer)
        shape = layer.out_shape
    head = _plan_head(spec, spec.head, shape)
    plan = Plan(spec, stem, tuple(blocks), head)
    if plan.params > limits.max_params:
        raise SpecError(
            f"the network has {plan.params:,} parameters; the limit is "
            f"{limits.max_params:,}. A dense layer right after flattening a large image is "
            "the usual cause: add pooling before the flatten, or use fewer features"
        )
    return plan


def _check_network(spec: NetSpec, limits: SpecLimits) -> None:
    shape = spec.input_shape
    if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
        raise SpecError(
            f"the input shape must be three positive numbers (channels, height, width), "
            f"like (3, 32, 32); got {shape!r}"
        )
    c, h, w = shape
    if c > limits.max_in_channels:
        raise SpecError(
            f"the input has {c} channels; the limit is {limits.max_in_channels} "
            "(1 for grey, 3 for colour images)"
        )
    if max(h, w) > limits.max_side:
        raise SpecError(
            f"the input is {h}x{w} pixels; the limit is {limits.max_side}x{limits.max_side};"
            " resize the images to a smaller size"
        )
    _check_int(
        spec.num_classes,
        "num_classes",
        2,
        limits.max_classes,
        "the network",
        None,
        "a classifier needs at least 2 classes",
    )
    if len(spec.blocks) > limits.max_blocks:
        raise SpecError(
            f"the network has {len(spec.blocks)} blocks; the limit is {limits.max_blocks}; "
            "remove blocks, or use bottleneck blocks to go deep with fewer of them"
        )
    d = spec.defaults
    where = "the defaults"
    _check_choice(d.activation, "activation", ACTIVATIONS, where, None)
    _check_choice(d.init, "init", INITS, where, None)
    for flag in ("batch_norm", "zero_init_last_bn"):
        if not isinstance(getattr(d, flag), bool):
            raise SpecError(f"{flag} must be true or false", where=where)


def _resolve(spec: NetSpec, block: _Layered, where: str, index: int | None) -> dict:
    """Per-block settings, falling back to the network defaults."""
    _check_choice(block.activation, "activation", ACTIVATIONS, where, index)
    _check_choice(block.init, "init", INITS, where, index)
    d = spec.defaults
    out = {
        "batch_norm": d.batch_norm if block.batch_norm is None else block.batch_norm,
        "activation": block.activation or d.activation,
        "init": block.init or d.init,
    }
    if isinstance(block, _Residual):
        zi = block.zero_init_last_bn
        out["zero_init_last_bn"] = d.zero_init_last_bn if zi is None else zi
    return out


def _channels(value, name, limits, where, index):
    _check_int(value, name, 1, limits.max_channels, where, index, "use for example 16 or 64")


def _kernel(value, limits, where, index):
    _check_int(value, "kernel_size", 1, limits.max_kernel, where, index, "3 is the usual size")


def _stride(value, where, index):
    _check_int(value, "stride", 1, 4, where, index, "use 1 to keep the size or 2 to halve it")


def _plan_stem(spec: NetSpec, stem: StemSpec, shape: Shape, limits: SpecLimits) -> Layer:
    where = "the stem"
    _channels(stem.out_channels, "out_channels", limits, where, None)
    _kernel(stem.kernel_size, limits, where, None)
    _stride(stem.stride, where, None)
    s = _resolve(spec, stem, where, None)
    k = stem.kernel_size
    oh, ow = _shrink(shape, k, stem.stride, k // 2, "convolution", where, None)
    params, macs, acts = _conv(shape[0], stem.out_channels, k, oh * ow, s["batch_norm"])
    if stem.pool:  # ImageNet stem: 3x3 max pool, stride 2, padding 1
        oh, ow = _shrink((stem.out_channels, oh, ow), 3, 2, 1, "max pool", where, None)
        acts += stem.out_channels * oh * ow
    return Layer(
        name="stem",
        kind="stem",
        index=None,
        in_shape=shape,
        out_shape=(stem.out_channels, oh, ow),
        params=params,
        macs=macs,
        activations=acts,
        **s,
    )


def _plan_head(spec: NetSpec, head: HeadSpec, shape: Shape) -> Layer:
    where = "the head"
    _check_choice(head.pool, "pool", POOL_MODES, where, None)
    _check_p(head.dropout, "dropout", where, None)
    features = shape[0]
    acts = features if len(shape) == 3 else 0  # the global pool's output
    acts += features if head.dropout > 0 else 0
    params, macs, fc_acts = _linear(features, spec.num_classes, bn=False, act=False)
    return Layer(
        name="head",
        kind="head",
        index=None,
        in_shape=shape,
        out_shape=(spec.num_classes,),
        activation="",
        init=spec.defaults.init,
        params=params,
        macs=macs,
        activations=acts + fc_acts,
    )


def _shortcut(block: _Residual, i: int, in_shape: Shape, out_shape: Shape) -> str:
    """Which shortcut a residual block gets (He et al. 2015, sec. 3.3, options A and B)."""
    _check_choice(block.shortcut, "shortcut", SHORTCUTS, f"block {i}", i)
    if not isinstance(block.skip, bool):
        raise SpecError(f"skip must be true or false, got {block.skip!r}", block=i)
    same = in_shape == out_shape
    if block.shortcut == PROJECTION:
        return PROJECTION
    if same:
        return IDENTITY
    if block.shortcut == "auto":
        return PROJECTION  # option B: always valid, torchvision's choice
    if block.shortcut == IDENTITY:
        if not block.skip:
            return NO_SHORTCUT
        raise SpecError(
            f"the skip goes from {format_shape(in_shape)} to {format_shape(out_shape)}; "
            "choose the 'projection' or 'zero-pad' shortcut, or turn the skip off",
            block=i,
        )
    # zero_pad (option A): subsample by the stride, then pad the new channels with zeros.
    if out_shape[0] < in_shape[0]:
        if not block.skip:
            return NO_SHORTCUT
        raise SpecError(
            f"a zero-pad shortcut can only add channels, but this block goes from "
            f"{in_shape[0]} to {out_shape[0]} channels; choose the 'projection' shortcut, "
            "or turn the skip off",
            block=i,
        )
    return ZERO_PAD


def _plan_block(spec: NetSpec, i: int, block: BlockSpec, shape: Shape, limits) -> Layer:
    where = f"block {i}"
    if not isinstance(block, BlockSpec) or type(block).kind == "":
        raise SpecError(f"unknown kind of block {type(block).__name__}", block=i)
    base = {"name": f"blocks.{i}", "kind": block.kind, "index": i, "in_shape": shape}

    if isinstance(block, PoolSpec):
        _needs_image(shape, "pooling", where, i)
        _check_choice(block.mode, "mode", POOL_MODES, where, i)
        _kernel(block.kernel_size, limits, where, i)
        stride = block.kernel_size if block.stride is None else block.stride
        _stride(stride, where, i)
        _check_int(
            block.padding,
            "padding",
            0,
            block.kernel_size // 2,
            where,
            i,
            "padding can be at most half the kernel size",
        )
        oh, ow = _shrink(shape, block.kernel_size, stride, block.padding, "pool", where, i)
        out = (shape[0], oh, ow)
        return Layer(**base, out_shape=out, activations=shape[0] * oh * ow)

    if isinstance(block, DropoutSpec):
        _check_p(block.p, "p", where, i)
        n = 1
        for d in shape:
            n *= d
        return Layer(**base, out_shape=shape, activations=n)

    if isinstance(block, FlattenSpec):
        if len(shape) == 1:
            raise SpecError("the input is already flat; remove this flatten block", block=i)
        c, h, w = shape
        return Layer(**base, out_shape=(c * h * w,))  # a view: no new memory

    s = _resolve(spec, block, where, i)
    bn = s["batch_norm"]
    if not isinstance(bn, bool):
        raise SpecError(f"batch_norm must be true or false, got {bn!r}", block=i)

    if isinstance(block, ConvSpec):
        _needs_image(shape, "convolution", where, i)
        _channels(block.out_channels, "out_channels", limits, where, i)
        _kernel(block.kernel_size, limits, where, i)
        _stride(block.stride, where, i)
        k = block.kernel_size
        oh, ow = _shrink(shape, k, block.stride, k // 2, "convolution", where, i)
        p, m, a = _conv(shape[0], block.out_channels, k, oh * ow, bn)
        out = (block.out_channels, oh, ow)
        return Layer(**base, out_shape=out, params=p, macs=m, activations=a, **s)

    if isinstance(block, DenseSpec):
        _needs_flat(shape, "dense", where, i)
        _check_int(
            block.out_features,
            "out_features",
            1,
            limits.max_features,
            where,
            i,
            "use for example 128 or 1024",
        )
        p, m, a = _linear(shape[0], block.out_features, bn)
        return Layer(**base, out_shape=(block.out_features,), params=p, macs=m, activations=a, **s)

    if isinstance(block, DenseResidualSpec):
        _needs_flat(shape, "dense residual", where, i)
        for name in ("width", "bottleneck"):
            _check_int(
                getattr(block, name),
                name,
                1,
                limits.max_features,
                where,
                i,
                "the classic block uses width 1024 and bottleneck 512",
            )
        _check_p(block.dropout, "dropout", where, i)
        if not isinstance(block.skip, bool):
            raise SpecError(f"skip must be true or false, got {block.skip!r}", block=i)
        w, b = block.width, block.bottleneck
        cost = _add(_linear(shape[0], w, bn), (0, 0, w), _linear(w, b, bn), _linear(b, w, bn))
        p, m, a = cost
        return Layer(
            **base,
            out_shape=(w,),
            params=p,
            macs=m,
            activations=a,
            skip=block.skip,
            shortcut=IDENTITY,
            **s,
        )

    if isinstance(block, (BasicSpec, BottleneckSpec)):
        _needs_image(shape, block.kind, where, i)
        _stride(block.stride, where, i)
        cin = shape[0]
        if isinstance(block, BasicSpec):
            _channels(block.out_channels, "out_channels", limits, where, i)
            cout = block.out_channels
        else:
            _channels(block.width, "width", limits, where, i)
            _check_int(block.expansion, "expansion", 1, 8, where, i, "ResNet-50 uses 4")
            cout = block.width * block.expansion
            _channels(cout, "width x expansion", limits, where, i)
        oh, ow = _shrink(shape, 3, block.stride, 1, "convolution", where, i)
        hw = oh * ow
        out = (cout, oh, ow)
        shortcut = _shortcut(block, i, shape, out)
        if isinstance(block, BasicSpec):
            cost = _add(_conv(cin, cout, 3, hw, bn), _conv(cout, cout, 3, hw, bn))
        else:
            mid = block.width
            cost = _add(
                _conv(cin, mid, 1, shape[1] * shape[2], bn),
                _conv(mid, mid, 3, hw, bn),
                _conv(mid, cout, 1, hw, bn),
            )
        if shortcut == PROJECTION:  # 1x1 conv (stride s) + BN, no activation
            cost = _add(cost, _conv(cin, cout, 1, hw, bn, act=False))
        p, m, a = cost
        return Layer(
            **base,
            out_shape=out,
            params=p,
            macs=m,
            activations=a,
            skip=block.skip,
            shortcut=shortcut,
            **s,
        )

    raise SpecError(f"unknown kind of block {block.kind!r}", block=i)


def describe_skip(layer: Layer) -> str:
    """'identity', 'zero-pad (A)', '1x1 projection (B)', '... (off)', or '' (no skip)."""
    if layer.skip is None:
        return ""
    words = _SHORTCUT_WORDS[layer.shortcut]
    return words if layer.skip else f"off ({words})"
