"""What the Train and Compare pages offer: datasets with their sizes, and sensible
training defaults per dataset. Data only."""

from __future__ import annotations

from core.config import TrainConfig

DATASET_TITLES = {
    "shapes": "Shapes (built in, offline)",
    "digits": "Digits 8x8 (built in, offline)",
    "mnist": "MNIST",
    "fashion_mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
    "upload": "Your images (a zip of class folders)",
}
SIZES = {
    "shapes": (16, 32, 64),
    "digits": (8, 16, 32),
    "mnist": (28,),
    "fashion_mnist": (28,),
    "cifar10": (32,),
    "upload": (32, 16, 64),
}

# Chosen so a first run on a laptop CPU finishes in about a minute with a visible lesson.
DEFAULTS = {
    "shapes": TrainConfig(epochs=3, batch_size=128, lr=0.1, schedule="cosine", warmup_steps=10),
    "digits": TrainConfig(epochs=10, batch_size=64, lr=0.05, schedule="cosine"),
    "mnist": TrainConfig(epochs=1, batch_size=128, lr=0.05),
    "fashion_mnist": TrainConfig(epochs=2, batch_size=128, lr=0.05),
    "cifar10": TrainConfig(epochs=5, batch_size=128, lr=0.1, augment=True, schedule="cosine"),
    "upload": TrainConfig(epochs=10, batch_size=32, lr=0.05, augment=True, schedule="cosine"),
}
