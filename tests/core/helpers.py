"""Small datasets and nets for training tests: seconds on a 2-core CPU."""

import dataclasses

import torch

from core.data import TensorData
from core.presets import PRESETS
from core.spec import NetSpec


def separable_data(n: int = 256, size: int = 8, seed: int = 0) -> TensorData:
    """Two classes a linear model can tell apart: dim images vs bright images."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.rand(n, 3, size, size, generator=g) * 0.5 + 0.5 * y.view(-1, 1, 1, 1)
    split = n * 3 // 4
    return TensorData(
        name="separable",
        classes=("dim", "bright"),
        x_train=x[:split],
        y_train=y[:split],
        x_val=x[split:],
        y_val=y[split:],
        mean=(0.5, 0.5, 0.5),
        std=(0.3, 0.3, 0.3),
    )


def tiny_spec(key: str = "resnet8_narrow", size: int = 8, classes: int = 2) -> NetSpec:
    return PRESETS[key].spec(input_shape=(3, size, size), num_classes=classes)


def with_dropout(spec: NetSpec) -> NetSpec:
    from core.spec import HeadSpec

    return dataclasses.replace(spec, head=HeadSpec(dropout=0.3))
