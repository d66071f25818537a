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
    return split_data("separable", ("dim", "bright"), x, y, n * 3 // 4, mean=(0.5, 0.5, 0.5))


def split_data(name: str, classes, x, y, n_train: int, mean, std=(0.3, 0.3, 0.3)) -> TensorData:
    """The first n_train images for training, the rest for validation."""
    return TensorData(
        name=name,
        classes=tuple(classes),
        x_train=x[:n_train],
        y_train=y[:n_train],
        x_val=x[n_train:],
        y_val=y[n_train:],
        mean=mean,
        std=std,
    )


def tiny_spec(key: str = "resnet8_narrow", size: int = 8, classes: int = 2) -> NetSpec:
    return PRESETS[key].spec(input_shape=(3, size, size), num_classes=classes)


def with_dropout(spec: NetSpec) -> NetSpec:
    from core.spec import HeadSpec

    return dataclasses.replace(spec, head=HeadSpec(dropout=0.3))
