"""A network as data: frozen dataclasses that round-trip exactly through JSON.

A NetSpec says what to build (input shape, classes, stem, blocks, head); `core.plan`
checks it and infers shapes, `core.model` builds it. Nothing here imports torch or the
planner: `core.plan` registers itself for `NetSpec.validate` (see `use_planner`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from core import jsondata
from core.errors import ExplainedError
from core.jsondata import fields_dict, is_int, show
from core.limits import SPEC_LIMITS, SpecLimits
from core.words import N_, say

SCHEMA_VERSION = 1

ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu")
INITS = ("kaiming", "xavier", "default", "small_normal")
SHORTCUTS = ("auto", "identity", "zero_pad", "projection")
POOL_MODES = ("max", "avg")

# Shortcuts once resolved by the planner (He et al. 2015, sec. 3.3: A is zero_pad, B is
# projection). NO_SHORTCUT: the skip is off and the block changes shape, so it has none.
IDENTITY, ZERO_PAD, PROJECTION, NO_SHORTCUT = "identity", "zero_pad", "projection", "none"

Shape = tuple[int, ...]  # (C, H, W) for images, (F,) for flat features


class SpecError(ExplainedError):
    """A spec that cannot be built. The message names the place and the fix.

    Attributes:
        block: index of the offending block in `NetSpec.blocks`, or None when the
            problem is in the stem, the head or the network as a whole.
        where: "block 3", "the stem", "the head" or "the network".
    """

    def __init__(
        self,
        problem: str,
        *,
        block: int | None = None,
        where: str | None = None,
        fix: str | None = None,
    ):
        self.block = block
        place = say("block {block}", block=block) if block is not None else N_("the network")
        super().__init__(problem, where=where or place, fix=fix)

    @property
    def advice(self) -> str:
        """The message without its place: "problem; fix" (for a box already at the place)."""
        return f"{self.problem}; {self.fix}" if self.fix else self.problem


def format_shape(shape: Shape) -> str:
    """(16, 32, 32) -> '16x32x32'; (1024,) -> '1024 features'."""
    if len(shape) == 1:
        return f"{shape[0]} features"
    return "x".join(str(d) for d in shape)


# --- network-wide defaults -------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Defaults:
    """Settings every block inherits unless it sets its own (a block's None = inherit)."""

    batch_norm: bool = True
    activation: str = "relu"
    init: str = "kaiming"
    zero_init_last_bn: bool = False  # Goyal et al. 2017: each residual branch starts at 0


# --- blocks ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BlockSpec:
    """Base of every block kind. `kind` is the name used in JSON and in the builder."""

    kind: ClassVar[str] = ""
    residual: ClassVar[bool] = False
    # Its output is an image (C, H, W) a GradCAM map can be read from. The one place
    # that says which block kinds have feature maps; core and the views read it here.
    feature_map: ClassVar[bool] = False


@dataclass(frozen=True, kw_only=True)
class WeightedBlockSpec(BlockSpec):
    """Blocks with weights: per-block overrides of the network defaults."""

    batch_norm: bool | None = None
    activation: str | None = None
    init: str | None = None


@dataclass(frozen=True, kw_only=True)
class ConvSpec(WeightedBlockSpec):
    """conv (k x k, 'same' padding) -> BatchNorm -> activation."""

    kind: ClassVar[str] = "conv"
    feature_map: ClassVar[bool] = True
    out_channels: int
    kernel_size: int = 3
    stride: int = 1


@dataclass(frozen=True, kw_only=True)
class PoolSpec(BlockSpec):
    """Max or average pooling; stride None means stride = kernel_size."""

    kind: ClassVar[str] = "pool"
    mode: str = "max"
    kernel_size: int = 2
    stride: int | None = None
    padding: int = 0


@dataclass(frozen=True, kw_only=True)
class ResidualBlockSpec(WeightedBlockSpec):
    """Blocks with a skip connection that can be switched off, live. `residual` is the
    one answer to "is this block residual?"; its modules derive from
    `core.blocks.ResidualBlock`."""

    residual: ClassVar[bool] = True
    skip: bool = True


@dataclass(frozen=True, kw_only=True)
class ConvResidualSpec(ResidualBlockSpec):
    """Residual blocks on images, whose shortcut can bridge a change of shape."""

    shortcut: str = "auto"  # used when input and output shapes differ
    zero_init_last_bn: bool | None = None


@dataclass(frozen=True, kw_only=True)
class BasicSpec(ConvResidualSpec):
    """Two 3x3 convs with a skip around them (He et al. 2015, Fig. 2, left)."""

    kind: ClassVar[str] = "basic"
    feature_map: ClassVar[bool] = True
    out_channels: int
    stride: int = 1


@dataclass(frozen=True, kw_only=True)
class BottleneckSpec(ConvResidualSpec):
    """1x1 reduce -> 3x3 (strided) -> 1x1 expand; out = width * expansion (Fig. 5)."""

    kind: ClassVar[str] = "bottleneck"
    feature_map: ClassVar[bool] = True
    width: int
    stride: int = 1
    expansion: int = 4


@dataclass(frozen=True, kw_only=True)
class DropoutSpec(BlockSpec):
    """Zeroes a share p of the activations while training."""

    kind: ClassVar[str] = "dropout"
    p: float = 0.5


@dataclass(frozen=True, kw_only=True)
class FlattenSpec(BlockSpec):
    """C x H x W image -> C*H*W features, for dense layers."""

    kind: ClassVar[str] = "flatten"


@dataclass(frozen=True, kw_only=True)
class DenseSpec(WeightedBlockSpec):
    """Linear -> BatchNorm -> activation, on flat features."""

    kind: ClassVar[str] = "dense"
    out_features: int


@dataclass(frozen=True, kw_only=True)
class DenseResidualSpec(ResidualBlockSpec):
    """The classic Keras example: Dense(width) -> Dropout -> Dense(bottleneck) ->
    Dense(width), then Add with the output of the dropout.

    As in that example (`z = Add()([x, y])`) the skip starts after the entry Dense and
    Dropout, so both sides of the add are `width` wide and no shortcut is needed.
    """

    kind: ClassVar[str] = "dense_residual"
    width: int = 1024
    bottleneck: int = 512
    dropout: float = 0.5


@dataclass(frozen=True, kw_only=True)
class StemSpec(WeightedBlockSpec):
    """The first conv of the net, optionally followed by a 3x3/2 max pool (ImageNet)."""

    out_channels: int
    kernel_size: int = 3
    stride: int = 1
    pool: bool = False


@dataclass(frozen=True, kw_only=True)
class HeadSpec:
    """Global pooling (skipped on flat input) -> optional dropout -> linear to classes."""

    pool: str = "avg"
    dropout: float = 0.0


BLOCK_KINDS: dict[str, type[BlockSpec]] = {
    cls.kind: cls
    for cls in (
        ConvSpec,
        PoolSpec,
        BasicSpec,
        BottleneckSpec,
        DropoutSpec,
        FlattenSpec,
        DenseSpec,
        DenseResidualSpec,
    )
}


# --- the network ------------------------------------------------------------------------

# `core.plan.make_plan`, registered by `core.plan` when it is imported (`use_planner`):
# the spec stays data and never imports the planner, so the two modules form no cycle.
_planner: Callable[..., Any] | None = None


def use_planner(planner: Callable[..., Any]) -> None:
    """Make `planner(spec)` the function behind `NetSpec.validate` (core.plan calls this)."""
    global _planner
    _planner = planner


@dataclass(frozen=True, kw_only=True)
class NetSpec:
    """A whole network. Edit with `dataclasses.replace`; check with `.validate()`."""

    name: str = "custom"
    input_shape: tuple[int, ...]
    num_classes: int
    stem: StemSpec | None = None
    blocks: tuple[BlockSpec, ...] = ()
    head: HeadSpec = field(default_factory=HeadSpec)
    defaults: Defaults = field(default_factory=Defaults)

    def __post_init__(self) -> None:
        # Accept lists (from code or JSON) but store tuples, so specs stay hashable.
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        object.__setattr__(self, "blocks", tuple(self.blocks))

    def validate(self):
        """Check every block and infer shapes: `core.plan.make_plan(self)`, a `Plan`.

        Raises:
            SpecError: naming the block and what to do about it.
        """
        if _planner is None:
            raise RuntimeError("import core.plan (or core.model) before validating a spec")
        return _planner(self)

    def with_skips(self, on: bool) -> NetSpec:
        """The same network with every skip connection on (residual) or off (plain)."""
        blocks = tuple(dataclasses.replace(b, skip=on) if b.residual else b for b in self.blocks)
        return dataclasses.replace(self, blocks=blocks, name=_twin_name(self.name, on))

    # -- JSON ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "name": self.name,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "stem": fields_dict(self.stem) if self.stem is not None else None,
            "blocks": [{"kind": b.kind, **fields_dict(b)} for b in self.blocks],
            "head": fields_dict(self.head),
            "defaults": fields_dict(self.defaults),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any, limits: SpecLimits = SPEC_LIMITS) -> NetSpec:
        """Parse a dict (from JSON). Rejects unknown keys and wrong types by name, and too
        many blocks before parsing any of them."""
        if not isinstance(data, dict):
            raise SpecError("a spec must be a JSON object with 'input_shape' and 'blocks'")
        schema = data.get("schema")
        if schema != SCHEMA_VERSION:
            raise SpecError(
                f"this file has spec schema {show(schema)}, but this version of "
                f"ResNet Explorer reads schema {SCHEMA_VERSION}; save it again from the Build page"
            )
        top = {k: v for k, v in data.items() if k != "schema"}
        _reject_unknown(top, {f.name for f in dataclasses.fields(cls)}, "the network")
        for key in ("input_shape", "num_classes"):
            if key not in top:
                raise SpecError(f"the spec has no '{key}'; add it")
        shape = top["input_shape"]
        if not isinstance(shape, list) or not all(is_int(d) for d in shape):
            raise SpecError(
                f"'input_shape' must be a list of whole numbers like [3, 32, 32], got {show(shape)}"
            )
        if not is_int(top["num_classes"]):
            raise SpecError(f"'num_classes' must be a whole number, got {show(top['num_classes'])}")
        raw_blocks = top.get("blocks", [])
        if not isinstance(raw_blocks, list):
            raise SpecError("'blocks' must be a list of blocks")
        check_block_count(len(raw_blocks), limits)
        stem = top.get("stem")
        return cls(
            name=_typed(top.get("name", "custom"), str, "name", "the network"),
            input_shape=tuple(shape),
            num_classes=top["num_classes"],
            stem=parse_dataclass(StemSpec, stem, "the stem") if stem is not None else None,
            blocks=tuple(_parse_block(i, b) for i, b in enumerate(raw_blocks)),
            head=parse_dataclass(HeadSpec, top.get("head", {}), "the head"),
            defaults=parse_dataclass(Defaults, top.get("defaults", {}), "the defaults"),
        )

    @classmethod
    def from_json(cls, text: str | bytes, limits: SpecLimits = SPEC_LIMITS) -> NetSpec:
        """Parse JSON text (or UTF-8 bytes). Its size, nesting and block count are checked
        before anything is built, so a hostile file is refused in milliseconds.

        Raises:
            SpecError: for every problem of the text, with a readable message.
        """
        data = jsondata.load(
            text, max_chars=limits.max_spec_chars, max_depth=limits.max_depth, error=SpecError
        )
        return cls.from_dict(data, limits)


def check_block_count(count: int, limits: SpecLimits = SPEC_LIMITS) -> None:
    """Refuse more than `limits.max_blocks` blocks (the parser checks before parsing any)."""
    if count > limits.max_blocks:
        raise SpecError(
            f"it has {count:,} blocks; the limit is {limits.max_blocks}",
            fix="remove blocks, or use bottleneck blocks to go deep with fewer of them",
        )


def _twin_name(name: str, residual: bool) -> str:
    """'ResNet-56' <-> 'Plain-56', 'Dense residual MLP' <-> 'Dense plain MLP'."""
    pairs = (("ResNet-", "Plain-"), (" residual ", " plain "))
    for res, plain in pairs:
        old, new = (plain, res) if residual else (res, plain)
        if old in f" {name} ":
            return f" {name} ".replace(old, new, 1).strip()
    return name


# --- parsing: core.jsondata raising SpecError ----------------------------------------------


def _reject_unknown(data: dict, known: set[str], where: str, block: int | None = None):
    jsondata.reject_unknown(data, known, where, error=SpecError, block=block)


def _typed(value: Any, hint: Any, name: str, where: str, block: int | None = None) -> Any:
    return jsondata.typed(value, hint, name, where, error=SpecError, block=block)


def parse_dataclass(cls: type, data: Any, where: str, block: int | None = None) -> Any:
    """`cls(**data)`, every field checked; raises SpecError naming the place and field."""
    return jsondata.parse_dataclass(cls, data, where, error=SpecError, block=block)


def _parse_block(index: int, data: Any) -> BlockSpec:
    where = f"block {index}"
    if not isinstance(data, dict) or "kind" not in data:
        raise SpecError("each block must be a JSON object with a 'kind'", block=index)
    kind = data["kind"]
    if not isinstance(kind, str) or kind not in BLOCK_KINDS:
        raise SpecError(
            f"unknown kind {show(kind)}; choose one of: {', '.join(BLOCK_KINDS)}",
            block=index,
        )
    settings = {k: v for k, v in data.items() if k != "kind"}
    return parse_dataclass(BLOCK_KINDS[kind], settings, where, index)
