"""Shared pieces for the lesion, landscape and confusion tests: tiny twins, briefly
trained on noise with four classes so that every lesion and grid point gives a different
number (a perfectly separable set would give 100 % everywhere and prove nothing)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from core.config import TrainConfig
from core.data import TensorData
from core.model import Net, build
from core.training import Trainer
from tests.core.helpers import split_data, tiny_spec

CLASSES = ("a", "b", "c", "d")


def noise_data(n_train: int = 96, n_val: int = 64, size: int = 8, seed: int = 0) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n_train + n_val, 3, size, size, generator=g)
    y = torch.randint(0, len(CLASSES), (n_train + n_val,), generator=g)
    x = x + 0.3 * y.view(-1, 1, 1, 1) / len(CLASSES)  # a weak signal, so some are right
    return split_data("noise", CLASSES, x, y, n_train, mean=(0.6, 0.6, 0.6))


def trained(key: str, data: TensorData, steps: int = 6, seed: int = 0) -> Net:
    """A tiny preset trained a few steps on the CPU in fp32 (BatchNorm statistics move)."""
    net = build(tiny_spec(key, size=data.input_shape[-1], classes=data.num_classes), seed=seed)
    cfg = TrainConfig(steps=steps, batch_size=32, lr=0.05, device="cpu", precision="fp32")
    trainer = Trainer(net, data, cfg)
    while not trainer.done:
        trainer.step()
    return net


def twin_fixtures(depth: int):
    """Module-scoped fixtures (data, resnet, plain): noise_data() and the tiny narrow twins
    of `depth` layers trained on it. Use: `data, resnet, plain = twin_fixtures(8)`."""

    @pytest.fixture(scope="module")
    def data():
        return noise_data()

    @pytest.fixture(scope="module")
    def resnet(data):
        return trained(f"resnet{depth}_narrow", data)

    @pytest.fixture(scope="module")
    def plain(data):
        return trained(f"plain{depth}_narrow", data)

    return data, resnet, plain


def normalised(data: TensorData, split: str = "val") -> tuple[torch.Tensor, torch.Tensor]:
    """The split's images normalised by hand, as the trainer does (the oracles' input)."""
    x, y = (data.x_val, data.y_val) if split == "val" else (data.x_train, data.y_train)
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    return (x - mean) / std, y


def oracle_loss_and_accuracy(model: torch.nn.Module, x, y) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits = model(x)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def weights(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def assert_same_weights(net: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = net.state_dict()
    assert after.keys() == before.keys()
    for k, v in before.items():
        assert torch.equal(after[k], v), k
