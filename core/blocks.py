"""The building blocks, written so that `forward` reads like the paper's figure.

Captum-safe by construction: one activation module per use, no in-place ops, and the
residual add out of place (`out = out + self.shortcut(x)`), so DeepLift, Integrated
Gradients, saliency and GradCAM all work on every block. A `ResidualBlock`'s `skip` is a
plain flag read on every forward: toggling it changes no weight, buffer or optimizer state.
"""

from __future__ import annotations

import inspect
import textwrap

import torch
import torch.nn.functional as F
from torch import nn

from core.spec import IDENTITY, NO_SHORTCUT, PROJECTION, ZERO_PAD

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}


def make_activation(name: str) -> nn.Module:
    """A fresh module every call: DeepLift attaches its hooks per module."""
    return _ACTIVATIONS[name]()


def norm2d(channels: int, on: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if on else nn.Identity()


def norm1d(features: int, on: bool) -> nn.Module:
    return nn.BatchNorm1d(features) if on else nn.Identity()


def conv(cin: int, cout: int, kernel_size: int, stride: int = 1, bn: bool = True) -> nn.Conv2d:
    """'same' padding for odd kernels; no bias when a BatchNorm follows (it has one)."""
    return nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=kernel_size // 2, bias=not bn)


class Dropout(nn.Dropout):
    """nn.Dropout that draws its masks from `generator` when one is set.

    A run sets its own generator (`set_dropout_generator`), so two runs with one seed
    drop the same units even while other runs use the global RNG.
    """

    generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or self.generator is None:
            return super().forward(x)
        keep = torch.empty_like(x).bernoulli_(1 - self.p, generator=self.generator)
        return x * keep / (1 - self.p)


def set_dropout_generator(module: nn.Module, generator: torch.Generator | None) -> None:
    for m in module.modules():
        if isinstance(m, Dropout):
            m.generator = generator


# --- shortcuts (He et al. 2015, sec. 3.3) ------------------------------------------------


class ZeroPadShortcut(nn.Module):
    """Option A: identity with strided subsampling, new channels filled with zeros.

    No parameters, so a plain net and its residual twin have the same parameter count.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.stride = stride
        self.extra = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]  # (B, C, H, W) -> (B, C, H/s, W/s)
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))  # (B, C, ...) -> (B, C + extra, ...)


class Projection(nn.Module):
    """Option B: a 1x1 conv (with the block's stride) and BatchNorm, torchvision's
    `downsample`."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, bn: bool):
        super().__init__()
        self.conv = conv(in_channels, out_channels, 1, stride, bn)
        self.bn = norm2d(out_channels, bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def make_shortcut(kind: str, cin: int, cout: int, stride: int, bn: bool) -> nn.Module | None:
    if kind == IDENTITY:
        return nn.Identity()
    if kind == ZERO_PAD:
        return ZeroPadShortcut(cin, cout, stride)
    if kind == PROJECTION:
        return Projection(cin, cout, stride, bn)
    assert kind == NO_SHORTCUT, kind
    return None


class ResidualBlock(nn.Module):
    """A block with a skip connection, switched live by its `skip` flag.

    Off, the block computes exactly its plain twin. Subclasses set `self.shortcut` (None
    when the block changes shape and was built with its skip off and no shortcut, so the
    skip cannot be switched on: check `has_shortcut` first) and then `self.skip`.
    """

    shortcut: nn.Module | None
    _skip: bool

    @property
    def has_shortcut(self) -> bool:
        return self.shortcut is not None

    @property
    def skip(self) -> bool:
        return self._skip

    @skip.setter
    def skip(self, on: bool) -> None:
        if on and not self.has_shortcut:  # a bug in the caller: Net.set_skip checks first
            raise ValueError("a block built without a shortcut cannot switch its skip on")
        self._skip = bool(on)


# --- blocks ------------------------------------------------------------------------------


class ConvBlock(nn.Module):
    """conv -> BN -> activation."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int, bn: bool, act: str):
        super().__init__()
        self.conv = conv(cin, cout, kernel_size, stride, bn)
        self.bn = norm2d(cout, bn)
        self.act = make_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Stem(ConvBlock):
    """The first conv; the ImageNet layout adds a 3x3/2 max pool."""

    def __init__(
        self, cin: int, cout: int, kernel_size: int, stride: int, bn: bool, act: str, pool: bool
    ):
        super().__init__(cin, cout, kernel_size, stride, bn, act)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1) if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(super().forward(x))


class DenseBlock(nn.Module):
    """Linear -> BN -> activation, on flat features."""

    def __init__(self, fin: int, fout: int, bn: bool, act: str):
        super().__init__()
        self.fc = nn.Linear(fin, fout, bias=not bn)
        self.bn = norm1d(fout, bn)
        self.act = make_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.fc(x)))


class BasicBlock(ResidualBlock):
    """Two 3x3 convs with a skip around them (He et al. 2015, Fig. 2).

    The stride sits on the first conv; with the skip off this is exactly the plain block.
    """

    def __init__(
        self, cin: int, cout: int, stride: int, bn: bool, act: str, shortcut: str, skip: bool
    ):
        super().__init__()
        self.conv1 = conv(cin, cout, 3, stride, bn)
        self.bn1 = norm2d(cout, bn)
        self.act1 = make_activation(act)
        self.conv2 = conv(cout, cout, 3, 1, bn)
        self.bn2 = norm2d(cout, bn)
        self.shortcut = make_shortcut(shortcut, cin, cout, stride, bn)
        self.act2 = make_activation(act)
        self.skip = skip

    def zero_init_last(self) -> None:
        """Start the branch at zero so the block begins as the identity (Goyal et al. 2017)."""
        if isinstance(self.bn2, nn.BatchNorm2d):
            nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)  # (B, C_in, H, W) -> (B, C_out, H/s, W/s)
        out = self.bn1(out)
        out = self.act1(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.skip:
            out = out + self.shortcut(x)  # the one line that makes the block residual
        out = self.act2(out)
        return out


class BottleneckBlock(ResidualBlock):
    """1x1 reduce -> 3x3 -> 1x1 expand, with a skip (He et al. 2015, Fig. 5).

    The stride sits on the 3x3 conv, as in torchvision's "ResNet V1.5", which is what
    torchvision's resnet50 weights use.
    """

    def __init__(
        self,
        cin: int,
        width: int,
        cout: int,
        stride: int,
        bn: bool,
        act: str,
        shortcut: str,
        skip: bool,
    ):
        super().__init__()
        self.conv1 = conv(cin, width, 1, 1, bn)
        self.bn1 = norm2d(width, bn)
        self.act1 = make_activation(act)
        self.conv2 = conv(width, width, 3, stride, bn)
        self.bn2 = norm2d(width, bn)
        self.act2 = make_activation(act)
        self.conv3 = conv(width, cout, 1, 1, bn)
        self.bn3 = norm2d(cout, bn)
        self.shortcut = make_shortcut(shortcut, cin, cout, stride, bn)
        self.act3 = make_activation(act)
        self.skip = skip

    def zero_init_last(self) -> None:
        if isinstance(self.bn3, nn.BatchNorm2d):
            nn.init.zeros_(self.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)  # (B, C_in, H, W) -> (B, width, H, W)
        out = self.bn1(out)
        out = self.act1(out)
        out = self.conv2(out)  # (B, width, H, W) -> (B, width, H/s, W/s)
        out = self.bn2(out)
        out = self.act2(out)
        out = self.conv3(out)  # (B, width, ...) -> (B, C_out, ...)
        out = self.bn3(out)
        if self.skip:
            out = out + self.shortcut(x)
        out = self.act3(out)
        return out


class DenseResidualBlock(ResidualBlock):
    """Dense(width) -> Dropout -> Dense(bottleneck) -> Dense(width), then add.

    The classic Keras example: `x = Dropout(Dense(1024)(inp)); y = Dense(1024)(Dense(512)(x));
    z = Add()([x, y])`. The skip carries the dropout's output past the two inner layers.
    """

    def __init__(
        self, fin: int, width: int, bottleneck: int, p: float, bn: bool, act: str, skip: bool
    ):
        super().__init__()
        self.fc1 = nn.Linear(fin, width, bias=not bn)
        self.bn1 = norm1d(width, bn)
        self.act1 = make_activation(act)
        self.drop = Dropout(p)
        self.fc2 = nn.Linear(width, bottleneck, bias=not bn)
        self.bn2 = norm1d(bottleneck, bn)
        self.act2 = make_activation(act)
        self.fc3 = nn.Linear(bottleneck, width, bias=not bn)
        self.bn3 = norm1d(width, bn)
        self.act3 = make_activation(act)
        self.shortcut = nn.Identity()
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc1(x)  # (B, F) -> (B, width)
        x = self.bn1(x)
        x = self.act1(x)
        x = self.drop(x)  # the skip starts here, as in the Keras example
        out = self.fc2(x)  # (B, width) -> (B, bottleneck)
        out = self.bn2(out)
        out = self.act2(out)
        out = self.fc3(out)  # (B, bottleneck) -> (B, width)
        out = self.bn3(out)
        out = self.act3(out)
        if self.skip:
            out = out + self.shortcut(x)
        return out


class Head(nn.Module):
    """Global pool (images only) -> flatten -> dropout -> linear to class scores."""

    def __init__(self, features: int, classes: int, pool: str | None, p: float):
        super().__init__()
        pools = {"avg": nn.AdaptiveAvgPool2d, "max": nn.AdaptiveMaxPool2d}
        self.pool = pools[pool](1) if pool else nn.Identity()
        self.flatten = nn.Flatten()
        self.drop = Dropout(p) if p > 0 else nn.Identity()
        self.fc = nn.Linear(features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(self.pool(x))  # (B, C, H, W) -> (B, C)
        return self.fc(self.drop(x))  # (B, C) -> (B, classes)


# --- the code the Build page quotes ------------------------------------------------------


def residual_forward_source(block: type[ResidualBlock] = BasicBlock) -> str:
    """The real source of `block.forward`, dedented: what the Build page shows."""
    return textwrap.dedent(inspect.getsource(block.forward)).rstrip()


def plain_forward_source(block: type[ResidualBlock] = BasicBlock) -> str:
    """The same source without the shortcut: the `if self.skip:` line and the lines it
    guards. This is the plain block; the residual block differs by that line alone."""
    lines, kept, guard = residual_forward_source(block).splitlines(), [], None
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if guard is not None and indent > guard:
            continue  # inside `if self.skip:`
        guard = indent if line.strip() == "if self.skip:" else None
        if guard is None:
            kept.append(line)
    return "\n".join(kept)
