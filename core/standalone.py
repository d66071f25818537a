"""A ResNet Explorer network in one file, with PyTorch as its only dependency.

Exported runs carry this file as `model.py`, with the run's specs in SPECS (put there by
`core.export`). It rebuilds each arm's network from its spec, with the same module names
as the app, and loads `weights-<arm>.safetensors` with a small reader of its own:

    python model.py                  # class scores of the first arm for a fixed input
    python model.py --arm plain      # another arm
    python model.py --weights w.safetensors
    python model.py --all            # every arm, as {arm: scores}

In your code: `net = load("residual")`, then `net(images)` on normalised (B, C, H, W).
This file imports nothing from ResNet Explorer (the export test runs it in isolation).
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

SPECS: dict[str, dict] = {}  # arm -> spec, filled in by the export

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}
DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16}
DTYPES |= {"BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8}


def conv(cin: int, cout: int, k: int, stride: int, bn: bool) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=not bn)


def norm(n: int, bn: bool, dims: int = 2) -> nn.Module:
    if not bn:
        return nn.Identity()
    return nn.BatchNorm2d(n) if dims == 2 else nn.BatchNorm1d(n)


class ConvBlock(nn.Module):
    """conv -> BN -> activation (also the stem, with an optional 3x3/2 max pool)."""

    def __init__(self, cin, cout, k, stride, bn, act, pool=False):
        super().__init__()
        self.conv = conv(cin, cout, k, stride, bn)
        self.bn = norm(cout, bn)
        self.act = ACTIVATIONS[act]()
        self.pool = nn.MaxPool2d(3, stride=2, padding=1) if pool else nn.Identity()

    def forward(self, x):
        return self.pool(self.act(self.bn(self.conv(x))))


class DenseBlock(nn.Module):
    def __init__(self, fin, fout, bn, act):
        super().__init__()
        self.fc = nn.Linear(fin, fout, bias=not bn)
        self.bn = norm(fout, bn, 1)
        self.act = ACTIVATIONS[act]()

    def forward(self, x):
        return self.act(self.bn(self.fc(x)))


class ZeroPadShortcut(nn.Module):
    """He et al. 2015, option A: subsample by the stride, pad new channels with zeros."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.stride, self.extra = stride, cout - cin

    def forward(self, x):
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))


class Projection(nn.Module):
    """He et al. 2015, option B: a 1x1 conv with the block's stride, then BN."""

    def __init__(self, cin, cout, stride, bn):
        super().__init__()
        self.conv = conv(cin, cout, 1, stride, bn)
        self.bn = norm(cout, bn)

    def forward(self, x):
        return self.bn(self.conv(x))


def shortcut(kind, cin, cout, stride, bn):
    if kind == "identity":
        return nn.Identity()
    if kind == "zero_pad":
        return ZeroPadShortcut(cin, cout, stride)
    return Projection(cin, cout, stride, bn) if kind == "projection" else None


class Residual(nn.Module):
    """A basic (two 3x3 convs) or bottleneck (1x1, 3x3, 1x1) block with its skip."""

    def __init__(self, convs, bn, act, short, skip):
        super().__init__()
        for i, (cin, cout, k, stride) in enumerate(convs, 1):
            setattr(self, f"conv{i}", conv(cin, cout, k, stride, bn))
            setattr(self, f"bn{i}", norm(cout, bn))
            if i < len(convs):
                setattr(self, f"act{i}", ACTIVATIONS[act]())
        self.n = len(convs)
        self.shortcut = short
        setattr(self, f"act{self.n}", ACTIVATIONS[act]())
        self.skip = skip

    def forward(self, x):
        out = x
        for i in range(1, self.n + 1):
            out = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(out))
            if i < self.n:
                out = getattr(self, f"act{i}")(out)
        if self.skip:
            out = out + self.shortcut(x)  # the one line that makes the block residual
        return getattr(self, f"act{self.n}")(out)


class DenseResidual(nn.Module):
    """Dense(width) -> Dropout -> Dense(bottleneck) -> Dense(width), plus the skip."""

    def __init__(self, fin, width, bottleneck, p, bn, act, skip):
        super().__init__()
        sizes = ((fin, width), (width, bottleneck), (bottleneck, width))
        for i, (a, b) in enumerate(sizes, 1):
            setattr(self, f"fc{i}", nn.Linear(a, b, bias=not bn))
            setattr(self, f"bn{i}", norm(b, bn, 1))
            setattr(self, f"act{i}", ACTIVATIONS[act]())
        self.drop = nn.Dropout(p)
        self.shortcut = nn.Identity()
        self.skip = skip

    def forward(self, x):
        x = self.drop(self.act1(self.bn1(self.fc1(x))))
        out = self.act3(self.bn3(self.fc3(self.act2(self.bn2(self.fc2(x))))))
        return out + self.shortcut(x) if self.skip else out


class Head(nn.Module):
    def __init__(self, features, classes, pool, p):
        super().__init__()
        pools = {"avg": nn.AdaptiveAvgPool2d, "max": nn.AdaptiveMaxPool2d}
        self.pool = pools[pool](1) if pool else nn.Identity()
        self.flatten = nn.Flatten()
        self.drop = nn.Dropout(p) if p > 0 else nn.Identity()
        self.fc = nn.Linear(features, classes)

    def forward(self, x):
        return self.fc(self.drop(self.flatten(self.pool(x))))


def side(n: int, k: int, s: int, pad: int) -> int:
    return (n + 2 * pad - k) // s + 1


def resolve_shortcut(b: dict, shape: tuple, out: tuple) -> str:
    """The app's rule: projection if asked; identity when shapes match; 'auto' means
    projection; identity or zero-pad that cannot work are dropped while the skip is off."""
    kind = b.get("shortcut", "auto")
    if kind == "projection":
        return kind
    if shape == out:
        return "identity"
    if kind == "auto":
        return "projection"
    if kind == "identity" or out[0] < shape[0]:
        return "none"
    return "zero_pad"


def make_block(b: dict, d: dict, shape: tuple) -> tuple[nn.Module, tuple]:
    """One block from its spec and the network defaults; returns it and its output shape."""
    kind = b["kind"]
    bn = d["batch_norm"] if b.get("batch_norm") is None else b["batch_norm"]
    act = b.get("activation") or d["activation"]
    if kind == "pool":
        k, pad = b.get("kernel_size", 2), b.get("padding", 0)
        s = b.get("stride") or k
        pool = nn.MaxPool2d if b.get("mode", "max") == "max" else nn.AvgPool2d
        return pool(k, stride=s, padding=pad), (shape[0], *(side(n, k, s, pad) for n in shape[1:]))
    if kind == "dropout":
        return nn.Dropout(b.get("p", 0.5)), shape
    if kind == "flatten":
        return nn.Flatten(), (shape[0] * shape[1] * shape[2],)
    if kind == "dense":
        return DenseBlock(shape[0], b["out_features"], bn, act), (b["out_features"],)
    if kind == "dense_residual":
        w = b.get("width", 1024)
        args = (shape[0], w, b.get("bottleneck", 512), b.get("dropout", 0.5), bn, act)
        return DenseResidual(*args, b.get("skip", True)), (w,)
    s, k = b.get("stride", 1), b.get("kernel_size", 3)
    if kind == "conv":
        out = (b["out_channels"], *(side(n, k, s, k // 2) for n in shape[1:]))
        return ConvBlock(shape[0], out[0], k, s, bn, act), out
    out_hw = tuple(side(n, 3, s, 1) for n in shape[1:])
    if kind == "basic":
        cout = b["out_channels"]
        convs = [(shape[0], cout, 3, s), (cout, cout, 3, 1)]
    else:  # bottleneck: the stride on the 3x3 conv (torchvision's ResNet V1.5)
        w = b["width"]
        cout = w * b.get("expansion", 4)
        convs = [(shape[0], w, 1, 1), (w, w, 3, s), (w, cout, 1, 1)]
    out = (cout, *out_hw)
    short = shortcut(resolve_shortcut(b, shape, out), shape[0], cout, s, bn)
    return Residual(convs, bn, act, short, b.get("skip", True)), out


class Net(nn.Module):
    """stem -> blocks -> head, named as in the app (stem.conv, blocks.3.conv1, head.fc)."""

    def __init__(self, spec: dict):
        super().__init__()
        d = {"batch_norm": True, "activation": "relu", **spec.get("defaults", {})}
        shape = tuple(spec["input_shape"])
        self.stem = nn.Identity()
        if spec.get("stem"):
            st = spec["stem"]
            bn = d["batch_norm"] if st.get("batch_norm") is None else st["batch_norm"]
            k, s = st.get("kernel_size", 3), st.get("stride", 1)
            act = st.get("activation") or d["activation"]
            self.stem = ConvBlock(shape[0], st["out_channels"], k, s, bn, act, st.get("pool"))
            shape = (st["out_channels"], *(side(n, k, s, k // 2) for n in shape[1:]))
            if st.get("pool"):
                shape = (shape[0], *(side(n, 3, 2, 1) for n in shape[1:]))
        blocks = []
        for b in spec.get("blocks", []):
            block, shape = make_block(b, d, shape)
            blocks.append(block)
        self.blocks = nn.Sequential(*blocks)
        head = spec.get("head", {})
        pool = head.get("pool", "avg") if len(shape) == 3 else None
        self.head = Head(shape[0], spec["num_classes"], pool, head.get("dropout", 0.0))

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file: 8-byte header length, JSON header, raw data."""
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header.pop("__metadata__", None)
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        raw = bytearray(data[8 + n + begin : 8 + n + end])
        t = torch.frombuffer(raw, dtype=DTYPES[info["dtype"]]) if raw else torch.empty(0)
        tensors[name] = t.to(DTYPES[info["dtype"]]).reshape(info["shape"])
    return tensors


def load(arm: str | None = None, weights: str | Path | None = None) -> Net:
    """The arm's network with its trained weights, in eval mode."""
    arm = arm or next(iter(SPECS))
    net = Net(SPECS[arm])
    weights = weights or Path(__file__).with_name(f"weights-{arm}.safetensors")
    net.load_state_dict(read_safetensors(weights))
    return net.eval()


def demo_input(shape) -> torch.Tensor:
    """Two fixed images (2, *shape), the same on every machine: no random numbers."""
    n = 1
    for d in shape:
        n *= d
    x = torch.linspace(-2.0, 2.0, n, dtype=torch.float64)
    return torch.stack([torch.sin(3 * x), torch.cos(5 * x)]).float().reshape(2, *shape)


def scores(arm: str | None = None, weights: str | Path | None = None) -> list:
    """The arm's class scores for `demo_input`, as nested lists."""
    arm = arm or next(iter(SPECS))
    net = load(arm, weights)
    with torch.no_grad():
        return net(demo_input(tuple(SPECS[arm]["input_shape"]))).tolist()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Class scores for a fixed input.")
    ap.add_argument("--arm", default=None, choices=list(SPECS) or None)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--all", action="store_true", help="every arm: {arm: scores}")
    args = ap.parse_args(argv)
    if args.all:
        print(json.dumps({arm: scores(arm) for arm in SPECS}))
    else:
        print(json.dumps(scores(args.arm, args.weights)))


if __name__ == "__main__":
    sys.exit(main())
