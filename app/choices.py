"""What the Train and Compare pages offer: datasets with their titles and sizes, sensible
training defaults per dataset, and the experiments' labels. Data only; the facts
themselves live in core (core.data.DATASETS, core.experiments) and are read from there."""

from __future__ import annotations

import dataclasses

from app.i18n import N_, _
from core import experiments
from core.config import TrainConfig
from core.data import DATASETS


def dataset_title(name: str) -> str:
    """The dataset's title in the reader's language, with where its images come from."""
    title = short_title(name)
    if name == "upload":
        return _("{title} (a zip of class folders)").format(title=title)
    if DATASETS[name].offline:
        return _("{title} (built in, offline)").format(title=title)
    return title


def short_title(name: str) -> str:
    """The dataset's bare title in the reader's language (run names, the Runs table)."""
    return _(DATASETS[name].title) if name in DATASETS else name


DATASET_NAMES = tuple(DATASETS)
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
RACE_DATA = tuple(experiments.RACE_DATA)
RACE_STEPS = experiments.RACE_STEPS
DEGRADATION_STEPS = experiments.DEGRADATION_STEPS
DEGRADATION_DATA = experiments.DEGRADATION_DATA
# What was measured, not a promise: bench/degradation.py on a 2-core CPU (README, "Benches").
DEGRADATION_TIME = N_(
    "Four nets, {steps:,} steps each. Measured by bench/degradation.py for 300 steps: 104 s "
    "on an idle 2-core CPU, 463 s on a busy one. Once it runs, the live tab shows this "
    "server's seconds a step and the time left, from the run itself."
)
INIT_DEPTHS = (8, 14, 20, 32, 56, 110)  # 6n+2, the depths He et al. trained on CIFAR
INIT_ACTIVATIONS = ("relu", "sigmoid", "tanh", "gelu")
# The Compare page's tabs; the live one shows the running experiment (and is opened for it).
# Marked, not translated: a tab's key holds its label, so pages pass `_(LIVE_TAB)`.
RACE_TAB, DEGRADATION_TAB, LIVE_TAB = (
    N_("Race: plain vs residual"),
    N_("Degradation (He et al. Fig. 1)"),
    N_("Live experiment"),
)
OVERLAY_TAB, INIT_TAB = N_("Overlay runs"), N_("Gradient flow at init")
COMPARE_TABS = (RACE_TAB, DEGRADATION_TAB, LIVE_TAB, OVERLAY_TAB, INIT_TAB)

# Human labels for the settings' identifiers (the identifiers stay in the saved JSON).
OPTIMIZER_LABELS = {
    "sgd": N_("SGD with momentum (He et al.)"),
    "adam": "Adam",
    "adamw": N_("AdamW (Adam, decoupled weight decay)"),
}
SCHEDULE_LABELS = {
    "constant": N_("constant"),
    "step": N_("steps: ÷10 at 50% and 75% of the run (He et al.)"),
    "cosine": N_("cosine: smoothly down to 0"),
    "onecycle": N_("one cycle: up for 30%, then down (Smith 2018)"),
}

# Human labels and one-line help for the code identifiers the pages show as choices or
# column headers; the identifiers themselves stay in the saved JSON (Build's JSON box).
TERMS: dict[str, tuple[str, str]] = {
    # activations
    "relu": ("ReLU", N_("max(0, x): the default of ResNets")),
    "tanh": ("tanh", N_("squashes to -1..1; saturates, so deep plain nets' gradients shrink")),
    "sigmoid": (
        N_("sigmoid"),
        N_("squashes to 0..1; its slope is at most 1/4, so gradients vanish"),
    ),
    "gelu": ("GELU", N_("a smooth ReLU (Hendrycks & Gimpel 2016), used in transformers")),
    # initialisations
    "kaiming": (
        N_("Kaiming (He) normal"),
        N_("weights scaled to keep ReLU signals level (He 2015)"),
    ),
    "xavier": (
        N_("Xavier (Glorot) uniform"),
        N_("weights scaled for tanh-like activations (2010)"),
    ),
    "default": (N_("PyTorch default"), N_("PyTorch's own reset_parameters")),
    "small_normal": (
        N_("small normal (std 0.01)"),
        N_("too small on purpose: a deep plain net's gradients vanish"),
    ),
    # shortcuts (He et al. 2015, sec. 3.3)
    "auto": (N_("automatic"), N_("identity when the shape stays, else a 1x1 projection")),
    "identity": (
        N_("identity"),
        N_("the input added as it is: only when the shape does not change"),
    ),
    "zero_pad": (N_("zero-padding (option A)"), N_("subsample, then pad new channels with zeros")),
    "projection": (N_("1x1 projection (option B)"), N_("a 1x1 convolution matches the new shape")),
    # pooling
    "max": (N_("max pooling"), N_("the largest value of each window")),
    "avg": (N_("average pooling"), N_("the mean of each window")),
    # block and layer kinds
    "stem": (N_("stem (first convolution)"), N_("the convolution that reads the image")),
    "head": (N_("head (pool + classifier)"), N_("global average pool and the linear classifier")),
    "conv": (N_("convolution"), N_("a convolution, BatchNorm and activation")),
    "basic": (N_("basic residual block"), N_("two 3x3 convolutions and a skip (ResNet-18/34)")),
    "bottleneck": (N_("bottleneck residual block"), N_("1x1, 3x3, 1x1 convolutions and a skip")),
    "pool": (N_("pooling"), N_("shrinks the image by taking the max or mean of each window")),
    "dropout": (N_("dropout"), N_("zeroes a random share of values while training")),
    "flatten": (N_("flatten"), N_("turns the feature maps into one vector")),
    "dense": (N_("fully connected"), N_("a linear layer and activation")),
    "dense_residual": (N_("fully connected residual"), N_("two linear layers and a skip")),
    # summary table columns
    "block": (N_("layer"), N_("its name in the network (and in the JSON)")),
    "kind": (N_("kind"), N_("what the layer is")),
    "output": (N_("output shape"), N_("channels x height x width of one image's output")),
    "params": (N_("parameters"), N_("weights it learns")),
    "mult-adds": (
        N_("multiply-adds"),
        N_("multiply-add operations per image, a measure of compute"),
    ),
    "activation MB": (
        N_("activations (MB, batch 128)"),
        N_("memory its outputs take while training"),
    ),
    "skip": (N_("skip connection"), N_("the shortcut of a residual block, and whether it is on")),
    # the block editor's "inherit" and on/off choices (app/editing.py)
    "network default": (N_("network default"), N_("the network's setting, chosen below")),
    "on": (N_("on"), ""),
    "off": (N_("off"), ""),
}

# The block editor's field names (the spec's identifiers, shown as words).
FIELD_WORDS = {
    "activation": N_("activation"),
    "batch_norm": N_("batch normalisation"),
    "bottleneck": N_("bottleneck width"),
    "dropout": N_("dropout share"),
    "expansion": N_("expansion"),
    "init": N_("initialisation"),
    "kernel_size": N_("kernel size"),
    "mode": N_("pooling mode"),
    "out_channels": N_("output channels"),
    "out_features": N_("output features"),
    "p": N_("share dropped (p)"),
    "padding": N_("padding"),
    "shortcut": N_("shortcut"),
    "skip": N_("skip connection on"),
    "stride": N_("stride"),
    "width": N_("width"),
    "zero_init_last_bn": N_("last BatchNorm starts at zero"),
}


def field_label(name: str) -> str:
    """A block field's name as words in the reader's language."""
    return _(FIELD_WORDS[name]) if name in FIELD_WORDS else name.replace("_", " ")


def label(identifier) -> str:
    """The human label of a code identifier in the reader's language (itself when it has
    none)."""
    return _(TERMS[identifier][0]) if identifier in TERMS else str(identifier)


def helps(identifiers) -> str:
    """'label: help' lines for a select's help, one per identifier that has a help."""
    lines = [
        f"{_(TERMS[i][0])}: {_(TERMS[i][1])}" for i in identifiers if i in TERMS and TERMS[i][1]
    ]
    return "  \n".join(lines)


def option_label(table: dict[str, str]):
    """A `format_func` that shows `table`'s (marked) label of an option in the reader's
    language."""
    return lambda option: _(table.get(option, option))


# A run's status as the pages show it; the identifiers stay in the store and the JSON.
STATUS_WORDS = {
    status: word
    for status, word in (
        ("all", N_("all")),
        ("queued", N_("queued")),
        ("running", N_("running")),
        ("paused", N_("paused")),
        ("finished", N_("finished")),
        ("stopped", N_("stopped")),
        ("cancelled", N_("cancelled")),
        ("failed", N_("failed")),
        ("diverged", N_("diverged")),
        ("interrupted", N_("interrupted")),
    )
}


def status_word(status: str) -> str:
    """A run's status in the reader's language (the identifier itself in English)."""
    return _(STATUS_WORDS[status]) if status in STATUS_WORDS else status
