"""Check a NetSpec and work out, block by block, what will be built.

`make_plan` walks the network with one planner per block kind (`core.planners`): every
shape inferred, inherited settings and shortcuts resolved, parameters, mult-adds and
activations counted analytically, and the whole checked against the caps on compute and
memory. `core.model` builds from the plan and `summary` formats it, so the two can never
disagree. No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass

from core import checks
from core.jsondata import show
from core.layers import Layer, Site
from core.limits import SPEC_LIMITS, SpecLimits
from core.planners import plan_block, plan_head, plan_stem
from core.spec import (
    ACTIVATIONS,
    IDENTITY,
    INITS,
    NO_SHORTCUT,
    PROJECTION,
    ZERO_PAD,
    NetSpec,
    Shape,
    SpecError,
    check_block_count,
    use_planner,
)
from core.words import N_, say

BYTES_PER_VALUE = 4  # float32; bf16 autocast keeps less, so the counts are an upper bound
# Weights, their gradients and two optimizer moments (Adam; SGD's momentum needs one).
STATE_COPIES = 4

_SHORTCUT_WORDS = {
    IDENTITY: N_("identity"),
    ZERO_PAD: N_("zero-pad (A)"),
    PROJECTION: N_("1x1 projection (B)"),
    NO_SHORTCUT: N_("none"),
}


@dataclass(frozen=True)
class Plan:
    """Every layer as it will be built; each `Layer` carries the spec it comes from."""

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


def make_plan(spec: NetSpec, limits: SpecLimits = SPEC_LIMITS) -> Plan:
    """Validate `spec` and describe every layer. Raises SpecError at the first problem."""
    _check_network(spec, limits)

    def site(index: int | None, where: str, shape: Shape) -> Site:
        return Site(index, where, shape, spec.defaults, limits)

    shape: Shape = spec.input_shape
    stem = None
    if spec.stem is not None:
        stem = plan_stem(spec.stem, site(None, N_("the stem"), shape))
        shape = stem.out_shape
    blocks = []
    for i, block in enumerate(spec.blocks):
        layer = plan_block(block, site(i, say("block {block}", block=i), shape))
        blocks.append(layer)
        shape = layer.out_shape
    head = plan_head(spec.head, site(None, N_("the head"), shape), spec.num_classes)
    plan = Plan(spec, stem, tuple(blocks), head)
    _check_costs(plan, limits)
    return plan


use_planner(make_plan)  # NetSpec.validate() calls make_plan, without importing this module


def _check_network(spec: NetSpec, limits: SpecLimits) -> None:
    checks.text(spec.name, "the name", limits.max_name_chars, where="the network", error=SpecError)
    shape = spec.input_shape
    if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
        raise SpecError(
            f"the input shape must be three positive numbers (channels, height, width), "
            f"like (3, 32, 32); got {show(shape)}"
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
    checks.whole(
        spec.num_classes,
        "num_classes",
        2,
        limits.max_classes,
        fix="a classifier needs at least 2 classes",
        where="the network",
        error=SpecError,
    )
    check_block_count(len(spec.blocks), limits)
    at = Site(None, "the defaults", shape, spec.defaults, limits)
    at.choice(spec.defaults.activation, "activation", ACTIVATIONS)
    at.choice(spec.defaults.init, "init", INITS)
    for flag in ("batch_norm", "zero_init_last_bn"):
        at.flag(getattr(spec.defaults, flag), flag)


# --- compute and memory --------------------------------------------------------------------


def _check_costs(plan: Plan, limits: SpecLimits) -> None:
    """The caps on the whole network: parameters, work and memory per image."""
    if plan.params > limits.max_params:
        raise SpecError(
            f"it has {plan.params:,} parameters; the limit is "
            f"{limits.max_params:,}. A dense layer right after flattening a large image is "
            "the usual cause: add pooling before the flatten, or use fewer features"
        )
    if plan.macs > limits.max_macs:
        raise SpecError(
            f"it needs {_sci(plan.macs)} mult-adds per image, "
            f"{_how_far(plan.macs, limits.max_macs)} the limit of {_sci(limits.max_macs)}",
            fix="use fewer or narrower blocks, downsample earlier, or use smaller images",
        )
    image = plan.activations * BYTES_PER_VALUE
    if image > limits.max_image_activation_bytes:
        cap = limits.max_image_activation_bytes
        raise SpecError(
            f"training on one image keeps {_size(image)} of activations, "
            f"{_how_far(image, cap)} the limit of {_size(cap)}",
            fix="use narrower blocks, downsample earlier (stride 2 or pooling), or use "
            "smaller images",
        )


def check_memory(
    plan: Plan,
    batch_size: int,
    available_bytes: int | None = None,
    limits: SpecLimits = SPEC_LIMITS,
) -> int:
    """Refuse a batch size whose training memory would not fit; returns the bytes needed.

    Call it at submit, with the device's free memory (e.g. `torch.cuda.mem_get_info()[0]`;
    None on a CPU, where only the cap applies). Counted: the activations autograd keeps
    for `batch_size` images (capped by `limits.max_batch_activation_bytes`), plus the
    weights, their gradients and the optimizer state (against `available_bytes`).

    Raises:
        SpecError: how far over it is, and the largest batch size that fits.
    """
    per_image = plan.activations * BYTES_PER_VALUE
    state = plan.params * BYTES_PER_VALUE * STATE_COPIES
    activations = per_image * batch_size
    cap = limits.max_batch_activation_bytes
    if activations > cap:
        fits = cap // per_image
        _refuse_batch(
            batch_size,
            f"keeps {_size(activations)} of activations",
            activations,
            cap,
            "limit",
            fits,
        )
    needed = activations + state
    if available_bytes is not None and needed > available_bytes:
        _refuse_batch(
            batch_size,
            f"needs {_size(needed)} (activations, weights, gradients and optimizer state)",
            needed,
            available_bytes,
            "memory free on the device",
            max((available_bytes - state) // per_image, 0),
        )
    return needed


def _refuse_batch(batch: int, need: str, got: int, cap: int, what: str, fits: int) -> None:
    fix = (
        f"use batch size {fits:,} or less, or a smaller network"
        if fits >= 1
        else "even one image does not fit: use a smaller network or smaller images"
    )
    raise SpecError(
        f"training with batch size {batch:,} {need}, {_how_far(got, cap)} the {_size(cap)} {what}",
        fix=fix,
    )


def _sci(n: float) -> str:
    """1.6e13, 1e11: how engineers read big counts aloud."""
    return f"{n:.2g}".replace("e+", "e")


def _how_far(got: float, cap: float) -> str:
    """'160x', '1.9x' or '3% over': how far `got` is past `cap`, read before 'the limit'."""
    ratio = got / cap
    if ratio >= 10:
        return f"{ratio:,.0f}x"
    return f"{ratio:.1f}x" if ratio >= 1.1 else f"{(ratio - 1) * 100:.2g}% over"


def _size(n: int) -> str:
    return f"{n / 1024**3:,.1f} GiB" if n >= 1024**3 else f"{n / 1024**2:,.0f} MiB"


def describe_skip(layer: Layer) -> str:
    """'identity', 'zero-pad (A)', '1x1 projection (B)', '... (off)', or '' (no skip)."""
    if not layer.residual:
        return ""
    words = _SHORTCUT_WORDS[layer.shortcut]
    return words if layer.skip else say("off ({words})", words=words)
