"""Limits against abuse, in one place with sane defaults.

Every cap that protects the server from a spec, an upload or a setting lives here, so a
deployment can read them all at once. Pure data: no torch, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class SpecLimits:
    """Caps on what a network description may ask the server to build."""

    max_blocks: int = 500  # ResNet-110 has 54 residual blocks; 500 is generous
    max_channels: int = 2048  # ResNet-50's widest stage
    max_side: int = 512  # input height or width, in pixels
    max_in_channels: int = 4  # grey, RGB, RGBA
    max_features: int = 8192  # width of a dense layer
    max_classes: int = 1000  # ImageNet
    max_kernel: int = 11  # AlexNet's first layer
    max_params: int = 150_000_000  # about 600 MB of float32 weights


SPEC_LIMITS = SpecLimits()
