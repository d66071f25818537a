"""A network as data: frozen dataclasses that round-trip exactly through JSON.

A NetSpec says what to build (input shape, classes, stem, blocks, head); `core.plan`
checks it and infers shapes, `core.model` builds it. Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

SCHEMA_VERSION = 1

ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu")
INITS = ("kaiming", "xavier", "default", "small_normal")
SHORTCUTS = ("auto", "identity", "zero_pad", "projection")
POOL_MODES = ("max", "avg")

Shape = tuple[int, ...]  # (C, H, W) for images, (F,) for flat features


class SpecError(ValueError):
    """A spec that cannot be built. The message names the place and the fix.

    Attributes:
        block: index of the offending block in `NetSpec.blocks`, or None when the
            problem is in the stem, the head or the network as a whole.
        where: "block 3", "the stem", "the head" or "the network".
    """

    def __init__(self, problem: str, *, block: int | None = None, where: str | None = None):
        self.block = block
        self.where = where or (f"block {block}" if block is not None else "the network")
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")


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
class _Layered(BlockSpec):
    """Blocks with weights: per-block overrides of the network defaults."""

    batch_norm: bool | None = None
    activation: str | None = None
    init: str | None = None


@dataclass(frozen=True, kw_only=True)
class ConvSpec(_Layered):
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
class _Residual(_Layered):
    """Blocks with a skip connection that can be switched off, live."""

    residual: ClassVar[bool] = True
    skip: bool = True
    shortcut: str = "auto"  # used when input and output shapes differ
    zero_init_last_bn: bool | None = None


@dataclass(frozen=True, kw_only=True)
class BasicSpec(_Residual):
    """Two 3x3 convs with a skip around them (He et al. 2015, Fig. 2, left)."""

    kind: ClassVar[str] = "basic"
    feature_map: ClassVar[bool] = True
    out_channels: int
    stride: int = 1


@dataclass(frozen=True, kw_only=True)
class BottleneckSpec(_Residual):
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
class DenseSpec(_Layered):
    """Linear -> BatchNorm -> activation, on flat features."""

    kind: ClassVar[str] = "dense"
    out_features: int


@dataclass(frozen=True, kw_only=True)
class DenseResidualSpec(_Layered):
    """The classic Keras example: Dense(width) -> Dropout -> Dense(bottleneck) ->
    Dense(width), then Add with the output of the dropout.

    As in that example (`z = Add()([x, y])`) the skip starts after the entry Dense and
    Dropout, so both sides of the add are `width` wide and no shortcut is needed.
    """

    kind: ClassVar[str] = "dense_residual"
    residual: ClassVar[bool] = True
    width: int = 1024
    bottleneck: int = 512
    dropout: float = 0.5
    skip: bool = True


@dataclass(frozen=True, kw_only=True)
class StemSpec(_Layered):
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
        """Check every block and infer shapes; returns a `core.plan.Plan`.

        Raises:
            SpecError: naming the block and what to do about it.
        """
        from core.plan import make_plan  # plan imports this module

        return make_plan(self)

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
    def from_dict(cls, data: Any) -> NetSpec:
        """Parse a dict (from JSON). Rejects unknown keys and wrong types by name."""
        if not isinstance(data, dict):
            raise SpecError("a spec must be a JSON object with 'input_shape' and 'blocks'")
        schema = data.get("schema")
        if schema != SCHEMA_VERSION:
            raise SpecError(
                f"this file has spec schema {schema!r}, but this version of ResNet Explorer "
                f"reads schema {SCHEMA_VERSION}; save it again from the Build page"
            )
        top = {k: v for k, v in data.items() if k != "schema"}
        _reject_unknown(top, {f.name for f in dataclasses.fields(cls)}, "the network")
        for key in ("input_shape", "num_classes"):
            if key not in top:
                raise SpecError(f"the spec has no '{key}'; add it")
        shape = top["input_shape"]
        if not isinstance(shape, list) or not all(_is_int(d) for d in shape):
            raise SpecError(
                f"'input_shape' must be a list of whole numbers like [3, 32, 32], got {shape!r}"
            )
        if not _is_int(top["num_classes"]):
            raise SpecError(f"'num_classes' must be a whole number, got {top['num_classes']!r}")
        raw_blocks = top.get("blocks", [])
        if not isinstance(raw_blocks, list):
            raise SpecError("'blocks' must be a list of blocks")
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
    def from_json(cls, text: str) -> NetSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise SpecError(
                f"the file is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
            ) from None
        return cls.from_dict(data)


def _twin_name(name: str, residual: bool) -> str:
    """'ResNet-56' <-> 'Plain-56', 'Dense residual MLP' <-> 'Dense plain MLP'."""
    pairs = (("ResNet-", "Plain-"), (" residual ", " plain "))
    for res, plain in pairs:
        old, new = (plain, res) if residual else (res, plain)
        if old in f" {name} ":
            return f" {name} ".replace(old, new, 1).strip()
    return name


# --- parsing helpers -------------------------------------------------------------------


def fields_dict(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _reject_unknown(data: dict, known: set[str], where: str, block: int | None = None):
    unknown = sorted(set(data) - known)
    if unknown:
        raise SpecError(
            f"unknown setting {unknown[0]!r}; known settings are: {', '.join(sorted(known))}",
            block=block,
            where=where,
        )


_TYPE_WORDS = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}


def _type_word(t: Any) -> str:
    if typing.get_origin(t) is tuple:
        return f"a list of {_TYPE_WORDS[typing.get_args(t)[0]].removeprefix('a ')}s"
    return "empty (null)"


def _typed(value: Any, hint: Any, name: str, where: str, block: int | None = None) -> Any:
    """Check a JSON value against a field's type hint; ints are accepted for floats."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    for t in options:
        if t is int and _is_int(value):
            return value
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if t in (bool, str) and isinstance(value, t):
            return value
        if typing.get_origin(t) is tuple and isinstance(value, list):
            item = typing.get_args(t)[0]
            return tuple(_typed(v, item, name, where, block) for v in value)
    words = " or ".join(_TYPE_WORDS.get(t, _type_word(t)) for t in options)
    raise SpecError(f"'{name}' must be {words}, got {value!r}", block=block, where=where)


def parse_dataclass(cls: type, data: Any, where: str, block: int | None = None) -> Any:
    if not isinstance(data, dict):
        raise SpecError("must be a JSON object of settings", block=block, where=where)
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    _reject_unknown(data, fields, where, block)
    kwargs = {k: _typed(v, hints[k], k, where, block) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError:
        missing = sorted(
            f.name
            for f in dataclasses.fields(cls)
            if f.name not in kwargs
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        )
        raise SpecError(f"missing setting {missing[0]!r}", block=block, where=where) from None


def _parse_block(index: int, data: Any) -> BlockSpec:
    where = f"block {index}"
    if not isinstance(data, dict) or "kind" not in data:
        raise SpecError("each block must be a JSON object with a 'kind'", block=index)
    kind = data["kind"]
    if kind not in BLOCK_KINDS:
        raise SpecError(
            f"unknown kind {kind!r}; choose one of: {', '.join(BLOCK_KINDS)}", block=index
        )
    settings = {k: v for k, v in data.items() if k != "kind"}
    return parse_dataclass(BLOCK_KINDS[kind], settings, where, index)
