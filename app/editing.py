"""Edits to a NetSpec as pure functions (add, remove, move, replace a block), and the
generic form that edits any block from its dataclass fields. Views stay thin."""

from __future__ import annotations

import dataclasses
import types
import typing

from core.spec import (
    ACTIVATIONS,
    BLOCK_KINDS,
    INITS,
    POOL_MODES,
    SHORTCUTS,
    BasicSpec,
    BlockSpec,
    BottleneckSpec,
    ConvSpec,
    DenseResidualSpec,
    DenseSpec,
    NetSpec,
    format_shape,
)

CHOICES = {"activation": ACTIVATIONS, "init": INITS, "shortcut": SHORTCUTS, "mode": POOL_MODES}
INHERIT = "network default"

# What a new block of each kind starts as, given the channels / features it receives.
_NEW = {
    "conv": lambda c: ConvSpec(out_channels=c),
    "basic": lambda c: BasicSpec(out_channels=c),
    "bottleneck": lambda c: BottleneckSpec(width=max(1, c // 4)),
    "dense": lambda c: DenseSpec(out_features=min(c, 1024)),
    "dense_residual": lambda c: DenseResidualSpec(),
}


def new_block(kind: str, channels: int = 16) -> BlockSpec:
    """A block of `kind` with sensible settings for an input of `channels`."""
    if kind in _NEW:
        return _NEW[kind](channels)
    return BLOCK_KINDS[kind]()


def insert_block(spec: NetSpec, index: int, block: BlockSpec) -> NetSpec:
    blocks = list(spec.blocks)
    blocks.insert(index, block)
    return dataclasses.replace(spec, blocks=tuple(blocks))


def remove_block(spec: NetSpec, index: int) -> NetSpec:
    blocks = list(spec.blocks)
    del blocks[index]
    return dataclasses.replace(spec, blocks=tuple(blocks))


def move_block(spec: NetSpec, index: int, offset: int) -> NetSpec:
    target = index + offset
    if not 0 <= target < len(spec.blocks):
        return spec
    blocks = list(spec.blocks)
    blocks[index], blocks[target] = blocks[target], blocks[index]
    return dataclasses.replace(spec, blocks=tuple(blocks))


def replace_block(spec: NetSpec, index: int, block: BlockSpec) -> NetSpec:
    blocks = list(spec.blocks)
    blocks[index] = block
    return dataclasses.replace(spec, blocks=tuple(blocks))


def block_label(index: int, block: BlockSpec, out_shape=None, error: bool = False) -> str:
    """'3 · basic 32, stride 2 · skip on -> 32x16x16' for the block list."""
    main = {
        "conv": lambda b: f"{b.out_channels}, {b.kernel_size}x{b.kernel_size}",
        "basic": lambda b: f"{b.out_channels}",
        "bottleneck": lambda b: f"{b.width}x{b.expansion}",
        "pool": lambda b: f"{b.mode} {b.kernel_size}",
        "dropout": lambda b: f"p={b.p:g}",
        "dense": lambda b: f"{b.out_features}",
        "dense_residual": lambda b: f"{b.width}/{b.bottleneck}",
    }.get(block.kind, lambda b: "")(block)
    parts = [f"{index} · {block.kind} {main}".rstrip()]
    if getattr(block, "stride", 1) not in (1, None):
        parts[0] += f", stride {block.stride}"
    if block.residual:
        parts.append(f"skip {'on' if block.skip else 'off'}")
    text = " · ".join(parts)
    if out_shape is not None:
        text += f" → {format_shape(out_shape)}"
    return ("⚠ " if error else "") + text


def field_kinds(block: BlockSpec) -> list[tuple[str, str, typing.Any]]:
    """(name, widget kind, current value) for each editable field of `block`.

    Widget kinds: 'choice' (with CHOICES, maybe INHERIT), 'flag', 'flag_or_inherit',
    'int', 'int_or_auto', 'float'.
    """
    hints = typing.get_type_hints(type(block))
    out = []
    for f in dataclasses.fields(block):
        hint = hints[f.name]
        options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        optional = type(None) in options
        base = next(t for t in options if t is not type(None))
        value = getattr(block, f.name)
        if f.name in CHOICES:
            kind = "choice"
        elif base is bool:
            kind = "flag_or_inherit" if optional else "flag"
        elif base is int:
            kind = "int_or_auto" if optional else "int"
        else:
            kind = "float"
        out.append((f.name, kind, value))
    return out
