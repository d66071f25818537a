"""Shared pieces for the lesion, landscape and confusion tests: tiny twins, briefly
trained on noise with four classes so that every lesion and grid point gives a different
number (a perfectly separable set would give 100 % everywhere and prove nothing)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from core.config import TrainConfig
from core.data import TensorData
from core.model import Net, build
from core.training import Trainer
from tests.core.helpers import tiny_spec

CLASSES = ("a", "b", "c", "d")


def noise_data(n_train: int = 96, n_val: int = 64, size: int = 8, seed: int = 0) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n_train + n_val, 3, size, size, generator=g)
    y = torch.randint(0, len(CLASSES), (n_train + n_val,), generator=g)
    x = x + 0.3 * y.view(-1, 1, 1, 1) / len(CLASSES)  # a weak signal, so some are right
    return TensorData(
        name="noise",
        classes=CLASSES,
        x_train=x[:n_train],
        y_train=y[:n_train],
        x_val=x[n_train:],
        y_val=y[n_train:],
        mean=(0.6, 0.6, 0.6),
        std=(0.3, 0.3, 0.3),
    )


def trained(key: str, data: TensorData, steps: int = 6, seed: int = 0) -> Net:
    """A tiny preset trained a few steps on the CPU in fp32 (BatchNorm statistics move)."""
    net = build(tiny_spec(key, size=data.input_shape[-1], classes=data.num_classes), seed=seed)
    cfg = TrainConfig(steps=steps, batch_size=32, lr=0.05, device="cpu", precision="fp32")
    trainer = Trainer(net, data, cfg)
    while not trainer.done:
        trainer.step()
    return net


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
