"""One planned layer (`Layer`), the place it is planned at (`Site`, whose checks raise a
SpecError naming that place), and the arithmetic of its costs. Used by `core.planners`
and `core.plan`; no torch here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core import checks
from core.jsondata import show
from core.limits import SpecLimits
from core.spec import (
    ACTIVATIONS,
    INITS,
    BlockSpec,
    ConvResidualSpec,
    Defaults,
    HeadSpec,
    Shape,
    SpecError,
    WeightedBlockSpec,
    format_shape,
)
from core.words import N_, say


@dataclass(frozen=True, kw_only=True)
class Layer:
    """One block (or the stem or head) as it will be built, with the spec it comes from.

    `params`, `macs` and `activations` are per sample; `activations` counts the output
    elements of every layer (conv, BN, activation, pool, linear, dropout), which is what
    autograd keeps for the backward pass.
    """

    name: str  # module path: "stem", "blocks.3", "head"
    kind: str
    index: int | None
    spec: BlockSpec | HeadSpec  # the block, StemSpec or HeadSpec this layer is built from
    in_shape: Shape
    out_shape: Shape
    batch_norm: bool = False
    activation: str = ""
    init: str = ""
    shortcut: str = ""  # resolved: identity, zero_pad, projection, none ("" if n/a)
    zero_init_last_bn: bool = False
    params: int = 0
    macs: int = 0
    activations: int = 0

    @property
    def residual(self) -> bool:
        """Has a skip connection: the spec's answer (`BlockSpec.residual`)."""
        return isinstance(self.spec, BlockSpec) and self.spec.residual

    @property
    def skip(self) -> bool | None:
        """The skip as planned (on or off); None for a layer without one."""
        return self.spec.skip if self.residual else None


# --- per-layer accounting ----------------------------------------------------------------


def conv_cost(cin: int, cout: int, k: int, out_hw: int, bn: bool, act: bool = True):
    """params, macs, activation elements of conv(k) -> [BN] -> [act]."""
    params = cin * cout * k * k + (2 * cout if bn else cout)  # BN replaces the bias
    macs = cin * cout * k * k * out_hw
    acts = cout * out_hw * (1 + bn + act)
    return params, macs, acts


def linear_cost(fin: int, fout: int, bn: bool, act: bool = True):
    params = fin * fout + (2 * fout if bn else fout)
    return params, fin * fout, fout * (1 + bn + act)


def add_costs(*costs):
    return tuple(sum(c) for c in zip(*costs, strict=True))


def as_costs(cost: tuple[int, int, int]) -> dict[str, int]:
    params, macs, activations = cost
    return {"params": params, "macs": macs, "activations": activations}


def out_side(side: int, k: int, s: int, pad: int) -> int:
    return (side + 2 * pad - k) // s + 1


# --- where a layer is planned: its place, input and limits, and the checks ------------------


@dataclass(frozen=True)
class Site:
    """Where a layer is planned. Its checks raise SpecError naming this place."""

    index: int | None  # the block's index; None for the stem and the head
    where: str  # "block 3", "the stem", "the head"
    shape: Shape  # the input this layer receives
    defaults: Defaults
    limits: SpecLimits

    def error(self, problem: str, fix: str | None = None) -> SpecError:
        return SpecError(problem, block=self.index, where=self.where, fix=fix)

    def whole(self, value, name: str, lo: int, hi: int, fix: str) -> None:
        checks.whole(
            value, name, lo, hi, fix=fix, where=self.where, error=SpecError, block=self.index
        )

    def choice(self, value, name: str, choices) -> None:
        """None (inherit the network default) is always allowed."""
        if value is not None:
            checks.choice(value, name, choices, where=self.where, error=SpecError, block=self.index)

    def share(self, value, name: str) -> None:
        """A dropout probability."""
        checks.number(
            value,
            f"{name} (the share of activations dropped)",
            0,
            1,
            upper_open=True,
            fix=N_("0.5 is the classic choice"),
            where=self.where,
            error=SpecError,
            block=self.index,
        )

    def flag(self, value, name: str) -> None:
        if not isinstance(value, bool):
            raise self.error(f"{name} must be true or false, got {show(value)}")

    def channels(self, value, name: str = "out_channels") -> None:
        self.whole(value, name, 1, self.limits.max_channels, N_("use for example 16 or 64"))

    def kernel(self, value) -> None:
        self.whole(value, "kernel_size", 1, self.limits.max_kernel, N_("3 is the usual size"))

    def stride(self, value) -> None:
        self.whole(value, "stride", 1, 4, N_("use 1 to keep the size or 2 to halve it"))

    def needs_image(self, kind: str) -> None:
        if len(self.shape) != 3:
            raise self.error(
                say(
                    "a {kind} block needs an image input (channels x height x width) but gets "
                    "{shape}",
                    kind=kind,
                    shape=format_shape(self.shape),
                ),
                N_("move it before the flatten block"),
            )

    def needs_flat(self, kind: str) -> None:
        if len(self.shape) != 1:
            raise self.error(
                say(
                    "a {kind} layer needs a flat input but gets {shape}",
                    kind=kind,
                    shape=format_shape(self.shape),
                ),
                N_("add a 'flatten' block before it"),
            )

    def shrink(self, k: int, s: int, pad: int, what: str, shape: Shape | None = None):
        """(height, width) after a k x k window with stride s and padding pad."""
        _, h, w = shape or self.shape
        oh, ow = out_side(h, k, s, pad), out_side(w, k, s, pad)
        if oh < 1 or ow < 1:
            raise self.error(
                say(
                    "a {k}x{k} {what} with stride {s} turns a {h}x{w} input into nothing",
                    k=k,
                    what=what,
                    s=s,
                    h=h,
                    w=w,
                ),
                N_(
                    "use a smaller kernel or stride, remove a downsampling block, or use a "
                    "larger input"
                ),
            )
        return oh, ow

    def resolve(self, block: WeightedBlockSpec) -> dict[str, Any]:
        """Per-block settings, falling back to the network defaults."""
        self.choice(block.activation, "activation", ACTIVATIONS)
        self.choice(block.init, "init", INITS)
        d = self.defaults
        out = {
            "batch_norm": d.batch_norm if block.batch_norm is None else block.batch_norm,
            "activation": block.activation or d.activation,
            "init": block.init or d.init,
        }
        self.flag(out["batch_norm"], "batch_norm")
        if isinstance(block, ConvResidualSpec):
            zi = block.zero_init_last_bn
            out["zero_init_last_bn"] = d.zero_init_last_bn if zi is None else zi
        return out

    def layer(self, spec: BlockSpec | HeadSpec, name: str | None = None, **fields) -> Layer:
        """The layer planned here: block i is named 'blocks.i'; the stem and head by name."""
        name = name or f"blocks.{self.index}"
        kind = getattr(spec, "kind", "") or name
        return Layer(
            name=name, kind=kind, index=self.index, spec=spec, in_shape=self.shape, **fields
        )
