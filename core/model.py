"""Build a NetSpec into a PyTorch model, switch skips live, and summarise it.

`build(spec)` returns a `Net` whose modules are named as the builder numbers blocks
(`stem`, `blocks.3.conv1`, `head.fc`). Initialisation draws from the caller's generator
only, so two nets built from one seed are identical even while other runs are active.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from core.blocks import (
    BasicBlock,
    BottleneckBlock,
    ConvBlock,
    DenseBlock,
    DenseResidualBlock,
    Dropout,
    Head,
    Stem,
)
from core.plan import Layer, Plan, describe_skip
from core.spec import (
    BLOCK_KINDS,
    BasicSpec,
    BlockSpec,
    BottleneckSpec,
    ConvSpec,
    DenseResidualSpec,
    DenseSpec,
    DropoutSpec,
    FlattenSpec,
    NetSpec,
    PoolSpec,
    SpecError,
    format_shape,
)

# Gain names for torch.nn.init; GELU is close enough to ReLU for the purpose.
_GAIN = {"relu": "relu", "gelu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "": "linear"}


class Net(nn.Module):
    """stem -> blocks -> head, keeping the spec it was built from."""

    def __init__(self, plan: Plan):
        super().__init__()
        self.spec = plan.spec
        self.stem = _build_stem(plan.stem) if plan.stem else nn.Identity()
        self.blocks = nn.Sequential(*(_build_block(layer) for layer in plan.blocks))
        self.head = _build_head(plan.head)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def residual_indices(self) -> list[int]:
        """The blocks with a skip connection, as their specs say (`BlockSpec.residual`)."""
        return [i for i, b in enumerate(self.spec.blocks) if b.residual]

    def skips(self) -> dict[int, bool]:
        """{block index: skip on?} for every residual block, as it is right now."""
        return {i: self.blocks[i].skip for i in self.residual_indices()}

    def set_skip(self, on: bool, block: int | None = None) -> None:
        """Switch the skip of one residual block (or of all, when block is None).

        Only a flag changes: weights, optimizer state and step count are untouched.

        Raises:
            SpecError: the block is not residual, or has no shortcut for its shape change.
        """
        residual = self.residual_indices()
        indices = residual if block is None else [block]
        for i in indices:  # check all before changing any, so a failure changes nothing
            if i not in residual:
                *most, last = [k for k, cls in BLOCK_KINDS.items() if cls.residual]
                kinds = f"{', '.join(most)} and {last}"
                raise SpecError(
                    f"has no skip connection to switch; only {kinds} blocks have one", block=i
                )
            if on and not self.blocks[i].has_shortcut:
                raise SpecError(
                    "this block changes shape and was built without a shortcut",
                    block=i,
                    fix="set its shortcut to 'projection' or 'zero-pad' in the builder, then "
                    "rebuild",
                )
        for i in indices:
            self.blocks[i].skip = on

    def current_spec(self) -> NetSpec:
        """The spec with the skip flags as they are now (after live toggles)."""
        blocks = list(self.spec.blocks)
        for i, on in self.skips().items():
            blocks[i] = dataclasses.replace(blocks[i], skip=on)
        return dataclasses.replace(self.spec, blocks=tuple(blocks))


def _build_stem(layer: Layer) -> nn.Module:
    s = layer.spec
    cin, bn, act = layer.in_shape[0], layer.batch_norm, layer.activation
    return Stem(cin, s.out_channels, s.kernel_size, s.stride, bn, act, s.pool)


def _build_head(layer: Layer) -> nn.Module:
    features, image = layer.in_shape[0], len(layer.in_shape) == 3
    head = layer.spec
    return Head(features, layer.out_shape[0], head.pool if image else None, head.dropout)


# One builder per block kind: the block's spec and its planned layer (input shape, the
# resolved settings and shortcut) in, the module out. `core.planners.PLANNERS` pairs them.


def _conv(s: ConvSpec, at: Layer) -> nn.Module:
    cin, bn, act = at.in_shape[0], at.batch_norm, at.activation
    return ConvBlock(cin, s.out_channels, s.kernel_size, s.stride, bn, act)


def _pool(s: PoolSpec, at: Layer) -> nn.Module:
    stride = s.kernel_size if s.stride is None else s.stride
    pool = nn.MaxPool2d if s.mode == "max" else nn.AvgPool2d
    return pool(s.kernel_size, stride=stride, padding=s.padding)


def _basic(s: BasicSpec, at: Layer) -> nn.Module:
    cin, bn, act = at.in_shape[0], at.batch_norm, at.activation
    return BasicBlock(cin, s.out_channels, s.stride, bn, act, at.shortcut, s.skip)


def _bottleneck(s: BottleneckSpec, at: Layer) -> nn.Module:
    cin, cout, bn, act = at.in_shape[0], at.out_shape[0], at.batch_norm, at.activation
    return BottleneckBlock(cin, s.width, cout, s.stride, bn, act, at.shortcut, s.skip)


def _dense(s: DenseSpec, at: Layer) -> nn.Module:
    return DenseBlock(at.in_shape[0], s.out_features, at.batch_norm, at.activation)


def _dense_residual(s: DenseResidualSpec, at: Layer) -> nn.Module:
    cin, bn, act = at.in_shape[0], at.batch_norm, at.activation
    return DenseResidualBlock(cin, s.width, s.bottleneck, s.dropout, bn, act, s.skip)


BUILDERS: dict[type[BlockSpec], Callable[[Any, Layer], nn.Module]] = {
    ConvSpec: _conv,
    PoolSpec: _pool,
    BasicSpec: _basic,
    BottleneckSpec: _bottleneck,
    DropoutSpec: lambda s, at: Dropout(s.p),
    FlattenSpec: lambda s, at: nn.Flatten(),
    DenseSpec: _dense,
    DenseResidualSpec: _dense_residual,
}


def _build_block(layer: Layer) -> nn.Module:
    return BUILDERS[type(layer.spec)](layer.spec, layer)


# --- initialisation ----------------------------------------------------------------------


def init_module(module: nn.Module, scheme: str, activation: str, gen: torch.Generator) -> None:
    """Initialise every conv and linear layer of `module`, drawing from `gen` only.

    kaiming: He et al. 2015 (fan_out for convs, as torchvision); xavier: Glorot & Bengio
    2010; default: PyTorch's own reset_parameters, redrawn from `gen`; small_normal:
    N(0, 0.01), the too-small init that makes deep plain nets' gradients vanish.
    BatchNorm starts at weight 1, bias 0 (PyTorch's default, deterministic).
    """
    gain_name = _GAIN[activation]
    init = nn.init
    for m in module.modules():
        if not isinstance(m, (nn.Conv2d, nn.Linear)):
            continue
        w, b = m.weight, m.bias
        fan_in = w[0].numel()
        if scheme == "kaiming":
            mode = "fan_out" if isinstance(m, nn.Conv2d) else "fan_in"
            init.kaiming_normal_(w, mode=mode, nonlinearity=gain_name, generator=gen)
        elif scheme == "xavier":
            init.xavier_uniform_(w, gain=init.calculate_gain(gain_name), generator=gen)
        elif scheme == "small_normal":
            init.normal_(w, 0.0, 0.01, generator=gen)
        else:  # PyTorch's default for Conv2d and Linear
            init.kaiming_uniform_(w, a=math.sqrt(5), generator=gen)
        if b is not None:
            if scheme == "default":
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(b, -bound, bound, generator=gen)
            else:
                init.zeros_(b)


def build(
    spec: NetSpec, *, seed: int | None = None, generator: torch.Generator | None = None
) -> Net:
    """Validate `spec` and build it, initialised from `seed` (or `generator`).

    Raises:
        SpecError: naming the block and the fix, when the spec cannot be built.
    """
    plan = spec.validate()
    if generator is None:
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
    net = Net(plan)
    if plan.stem:
        init_module(net.stem, plan.stem.init, plan.stem.activation, generator)
    for module, layer in zip(net.blocks, plan.blocks, strict=True):
        if layer.init:
            init_module(module, layer.init, layer.activation, generator)
        if layer.zero_init_last_bn and hasattr(module, "zero_init_last"):
            module.zero_init_last()
    init_module(net.head, plan.head.init, "", generator)
    return net


# --- summary -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """Per-layer rows and totals; `rows` is ready for a table."""

    plan: Plan
    batch_size: int
    bytes_per_value: int = 4  # float32

    @property
    def rows(self) -> list[dict]:
        return [self._row(layer) for layer in self.plan.layers]

    def _row(self, layer: Layer) -> dict:
        return {
            "block": layer.name,
            "kind": layer.kind,
            "output": format_shape(layer.out_shape),
            "params": layer.params,
            "mult-adds": layer.macs,
            "activation MB": self._mb(layer.activations),
            "skip": describe_skip(layer),
        }

    def _mb(self, elements: int) -> float:
        return round(elements * self.batch_size * self.bytes_per_value / 2**20, 2)

    @property
    def totals(self) -> dict:
        return {
            "params": self.plan.params,
            "mult-adds": self.plan.macs,
            "activation MB": self._mb(self.plan.activations),
            "blocks": len(self.plan.blocks),
            "residual blocks": sum(layer.residual for layer in self.plan.blocks),
            "skips on": sum(bool(layer.skip) for layer in self.plan.blocks),
        }


def summary(spec_or_model: NetSpec | Net, batch_size: int = 128) -> Summary:
    """Output shape, parameters, multiply-adds and activation memory of every block.

    Multiply-adds are per image (convolutions and linear layers, the usual count);
    activation memory is for `batch_size` images in float32. A model is summarised with
    its skips as they are now.
    """
    spec = spec_or_model.current_spec() if isinstance(spec_or_model, Net) else spec_or_model
    return Summary(spec.validate(), batch_size)
