"""What makes a Trainer's step interruptible without a trace: hooks that poll the
interrupt at each block, and the state a cut-short step must put back so that taking it
again gives what an uninterrupted step gives (the dropout stream, and BatchNorm's running
averages and counts, which a forward pass updates before any weight changes).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def watch(net: nn.Module, check: Callable[[], None]) -> None:
    """`check` before each block's forward and when backward reaches its output."""

    def after_forward(module, args, output):
        if isinstance(output, torch.Tensor) and output.requires_grad:
            output.register_hook(lambda grad: check())

    for module in (net.stem, *net.blocks, net.head):
        module.register_forward_pre_hook(lambda module, args: check())
        module.register_forward_hook(after_forward)


class StepUndo:
    """Keeps, before a step, what its forward and backward change besides the weights;
    `restore` puts it back when the step was cut short. Build it after the net has been
    moved to its device (moving replaces the buffers)."""

    def __init__(self, net: nn.Module, noise: torch.Generator):
        self.noise = noise
        self.buffers = [b for b in net.buffers() if b.numel()]
        self.kept = [torch.empty_like(b) for b in self.buffers]

    def keep(self) -> torch.Tensor:
        """Copy the buffers aside; returns the noise stream's state."""
        if self.buffers:
            torch._foreach_copy_(self.kept, self.buffers)
        return self.noise.get_state()

    def restore(self, noise_state: torch.Tensor) -> None:
        self.noise.set_state(noise_state)
        if self.buffers:
            torch._foreach_copy_(self.buffers, self.kept)
