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

# Chosen so a first run on a laptop CPU finishes in about a minute with a visible lesson.
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
