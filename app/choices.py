"""What the Train and Compare pages offer: datasets with their titles and sizes, sensible
training defaults per dataset, and the experiments' labels. Data only; the facts
themselves live in core (core.data.DATASETS, core.experiments) and are read from there."""

from __future__ import annotations

import dataclasses

from core import experiments
from core.config import TrainConfig
from core.data import DATASETS


def _title(name: str) -> str:
    info = DATASETS[name]
    if name == "upload":
        return f"{info.title} (a zip of class folders)"
    return f"{info.title} (built in, offline)" if info.offline else info.title


DATASET_TITLES = {name: _title(name) for name in DATASETS}
SHORT_TITLES = {name: info.title for name, info in DATASETS.items()}  # for run names
SIZES = {
    "shapes": (16, 32, 64),
    "digits": (8, 16, 32),
    "mnist": (28,),
    "fashion_mnist": (28,),
    "cifar10": (32,),
    "upload": (32, 16, 64),
}

# Chosen so a first run shows a visible lesson in seconds to a minute on a 2-core CPU (the
# default, ResNet-8 narrow on Shapes: 114 steps, measured 2.4-3.2 s; README).
# Augmentation (crop and flip) where it suits the images (core.data.DatasetInfo.augment).
_DEFAULTS = {
    "shapes": TrainConfig(epochs=3, batch_size=128, lr=0.1, schedule="cosine", warmup_steps=10),
    "digits": TrainConfig(epochs=10, batch_size=64, lr=0.05, schedule="cosine"),
    "mnist": TrainConfig(epochs=1, batch_size=128, lr=0.05),
    "fashion_mnist": TrainConfig(epochs=2, batch_size=128, lr=0.05),
    "cifar10": TrainConfig(epochs=5, batch_size=128, lr=0.1, schedule="cosine"),
    "upload": TrainConfig(epochs=10, batch_size=32, lr=0.05, schedule="cosine"),
}
DEFAULTS = {
    name: dataclasses.replace(cfg, augment=DATASETS[name].augment)
    for name, cfg in _DEFAULTS.items()
}

# Compare: the races and the degradation set, as core.experiments defines them.
RACE_LABELS = tuple(experiments.RACES)
DEFAULT_RACE = experiments.DEFAULT_RACE
RACE_DATA = {name: DATASET_TITLES[name] for name in experiments.RACE_DATA}
RACE_STEPS = experiments.RACE_STEPS
DEGRADATION_STEPS = experiments.DEGRADATION_STEPS
DEGRADATION_DATA = DATASET_TITLES[experiments.DEGRADATION_DATA]
# What was measured, not a promise: bench/degradation.py on a 2-core CPU (README, "Benches").
DEGRADATION_TIME = (
    "Four nets, {steps:,} steps each. Measured by bench/degradation.py for 300 steps: 104 s "
    "on an idle 2-core CPU, 463 s on a busy one. Once it runs, the live tab shows this "
    "server's seconds a step and the time left, from the run itself."
)
INIT_DEPTHS = (8, 14, 20, 32, 56, 110)  # 6n+2, the depths He et al. trained on CIFAR
INIT_ACTIVATIONS = ("relu", "sigmoid", "tanh", "gelu")
# The Compare page's tabs; the live one shows the running experiment (and is opened for it).
RACE_TAB, DEGRADATION_TAB, LIVE_TAB = (
    "Race: plain vs residual",
    "Degradation (He et al. Fig. 1)",
    "Live experiment",
)
OVERLAY_TAB, INIT_TAB = "Overlay runs", "Gradient flow at init"
COMPARE_TABS = (RACE_TAB, DEGRADATION_TAB, LIVE_TAB, OVERLAY_TAB, INIT_TAB)

# Human labels for the settings' identifiers (the identifiers stay in the saved JSON).
OPTIMIZER_LABELS = {
    "sgd": "SGD with momentum (He et al.)",
    "adam": "Adam",
    "adamw": "AdamW (Adam, decoupled weight decay)",
}
SCHEDULE_LABELS = {
    "constant": "constant",
    "step": "steps: ÷10 at 50% and 75% of the run (He et al.)",
    "cosine": "cosine: smoothly down to 0",
    "onecycle": "one cycle: up for 30%, then down (Smith 2018)",
}

# Human labels and one-line help for the code identifiers the pages show as choices or
# column headers; the identifiers themselves stay in the saved JSON (Build's JSON box).
TERMS: dict[str, tuple[str, str]] = {
    # activations
    "relu": ("ReLU", "max(0, x): the default of ResNets"),
    "tanh": ("tanh", "squashes to -1..1; saturates, so deep plain nets' gradients shrink"),
    "sigmoid": ("sigmoid", "squashes to 0..1; its slope is at most 1/4, so gradients vanish"),
    "gelu": ("GELU", "a smooth ReLU (Hendrycks & Gimpel 2016), used in transformers"),
    # initialisations
    "kaiming": ("Kaiming (He) normal", "weights scaled to keep ReLU signals level (He 2015)"),
    "xavier": ("Xavier (Glorot) uniform", "weights scaled for tanh-like activations (2010)"),
    "default": ("PyTorch default", "PyTorch's own reset_parameters"),
    "small_normal": (
        "small normal (std 0.01)",
        "too small on purpose: a deep plain net's gradients vanish",
    ),
    # shortcuts (He et al. 2015, sec. 3.3)
    "auto": ("automatic", "identity when the shape stays, else a 1x1 projection"),
    "identity": ("identity", "the input added as it is: only when the shape does not change"),
    "zero_pad": ("zero-padding (option A)", "subsample, then pad new channels with zeros"),
    "projection": ("1x1 projection (option B)", "a 1x1 convolution matches the new shape"),
    # pooling
    "max": ("max pooling", "the largest value of each window"),
    "avg": ("average pooling", "the mean of each window"),
    # block and layer kinds
    "stem": ("stem (first convolution)", "the convolution that reads the image"),
    "head": ("head (pool + classifier)", "global average pool and the linear classifier"),
    "conv": ("convolution", "a convolution, BatchNorm and activation"),
    "basic": ("basic residual block", "two 3x3 convolutions and a skip (ResNet-18/34)"),
    "bottleneck": ("bottleneck residual block", "1x1, 3x3, 1x1 convolutions and a skip"),
    "pool": ("pooling", "shrinks the image by taking the max or mean of each window"),
    "dropout": ("dropout", "zeroes a random share of values while training"),
    "flatten": ("flatten", "turns the feature maps into one vector"),
    "dense": ("fully connected", "a linear layer and activation"),
    "dense_residual": ("fully connected residual", "two linear layers and a skip"),
    # summary table columns
    "block": ("layer", "its name in the network (and in the JSON)"),
    "kind": ("kind", "what the layer is"),
    "output": ("output shape", "channels x height x width of one image's output"),
    "params": ("parameters", "weights it learns"),
    "mult-adds": ("multiply-adds", "multiply-add operations per image, a measure of compute"),
    "activation MB": ("activations (MB, batch 128)", "memory its outputs take while training"),
    "skip": ("skip connection", "the shortcut of a residual block, and whether it is on"),
}


def label(identifier) -> str:
    """The human label of a code identifier (itself when it has none)."""
    return TERMS.get(identifier, (str(identifier), ""))[0]


def helps(identifiers) -> str:
    """'label: help' lines for a select's help, one per identifier that has a help."""
    lines = [f"{TERMS[i][0]}: {TERMS[i][1]}" for i in identifiers if i in TERMS]
    return "  \n".join(lines)
