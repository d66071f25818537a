"""Experiments that need no training: gradient flow at initialisation, across depths.

One backward pass on a fresh net shows where gradients vanish: the per-layer gradient
norms of a deep plain net fall towards the input, a residual net's stay level.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.model import build
from core.presets import cifar_resnet
from core.spec import Defaults, NetSpec
from core.training import layer_names, layer_of


@dataclass(frozen=True)
class GradFlow:
    """Per-layer gradient L2 norms of one fresh net on one batch."""

    name: str
    layers: tuple[str, ...]
    norms: tuple[float, ...]

    @property
    def first_to_last(self) -> float:
        """Gradient norm of the first layer over that of the last block before the head:
        far below 1 means the early layers barely learn (vanishing gradients)."""
        body = self.norms[:-1] or self.norms
        return body[0] / body[-1] if body[-1] > 0 else float("inf")


def layer_grad_norms(net: torch.nn.Module) -> dict[str, float]:
    """{layer: L2 norm of all its parameters' gradients}, layers as the builder names them.

    Squares are added in float64: a vanishing gradient of 1e-30 (squared 1e-60, zero in
    float32) reads 1e-30, so the input side of a deep sigmoid net stays on the chart.
    """
    sums: dict[str, float] = {}
    for name, p in net.named_parameters():
        if p.grad is None:
            continue
        layer = layer_of(name)
        norm = float(torch.linalg.vector_norm(p.grad, dtype=torch.float64))
        sums[layer] = sums.get(layer, 0.0) + norm * norm
    return {k: v**0.5 for k, v in sums.items()}


def grad_flow_at_init(spec: NetSpec, x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> GradFlow:
    """Build `spec` from `seed`, run one batch forward and backward (train mode, as in the
    first training step), and return each layer's gradient norm. No weight changes."""
    net = build(spec, seed=seed).train()
    loss = F.cross_entropy(net(x), y)
    loss.backward()
    norms = layer_grad_norms(net)
    layers = layer_names(net)
    return GradFlow(spec.name, layers, tuple(norms.get(layer, 0.0) for layer in layers))


@dataclass(frozen=True)
class SweepPoint:
    depth: int
    residual: bool
    batch_norm: bool
    activation: str
    flow: GradFlow


def depth_sweep(
    depths: tuple[int, ...] = (8, 14, 20, 32, 56, 110),
    *,
    residual: tuple[bool, ...] = (False, True),
    batch_norm: tuple[bool, ...] = (True, False),
    activations: tuple[str, ...] = ("relu", "sigmoid"),
    widths: tuple[int, int, int] = (8, 16, 32),
    input_shape: tuple[int, int, int] = (3, 16, 16),
    batch: int = 32,
    seed: int = 0,
) -> list[SweepPoint]:
    """Gradient flow at init for CIFAR-style nets of each depth (6n+2) and variant.

    Narrow and small by default so the whole sweep takes seconds on a laptop CPU. Every
    variant sees the same random batch and the same seed.
    """
    for d in depths:
        if (d - 2) % 6 or d < 8:
            raise ValueError(f"depth {d} is not 6n+2 (8, 14, 20, 32, 44, 56, 110, ...)")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *input_shape, generator=gen)
    y = torch.randint(0, 10, (batch,), generator=gen)
    points = []
    for depth in depths:
        for res in residual:
            for bn in batch_norm:
                for act in activations:
                    spec = cifar_resnet(
                        (depth - 2) // 6, residual=res, widths=widths, input_shape=input_shape
                    )
                    spec = dataclasses.replace(
                        spec, defaults=Defaults(batch_norm=bn, activation=act)
                    )
                    flow = grad_flow_at_init(spec, x, y, seed=seed)
                    points.append(SweepPoint(depth, res, bn, act, flow))
    return points
