"""Limits against abuse, in one place with sane defaults.

Every cap that protects the server from a spec, an upload or a setting lives here, so a
deployment can read them all at once. Pure data: no torch, no I/O.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class SpecLimits:
    """Caps on what a network description may ask the server to build."""

    max_blocks: int = 500  # ResNet-110 has 54 residual blocks; 500 is generous
    max_channels: int = 2048  # ResNet-50's widest stage
    max_side: int = 512  # input height or width, in pixels
    max_in_channels: int = 4  # grey, RGB, RGBA
    max_features: int = 8192  # width of a dense layer
    max_classes: int = 1000  # ImageNet
    max_kernel: int = 11  # AlexNet's first layer
    max_params: int = 150_000_000  # about 600 MB of float32 weights
    # Work per image, forward: ResNet-50 at 224x224 needs 4.1e9 mult-adds, at 512x512
    # 2.1e10; 1e11 is 25x ResNet-50, about a second per image and step on a laptop CPU.
    max_macs: int = 100_000_000_000
    # Activations autograd keeps for one image, float32: ResNet-50 at 224x224 keeps 0.12
    # GiB, at 512x512 0.6 GiB; above 1 GiB a batch of 16 would not fit on a 16 GB GPU.
    max_image_activation_bytes: int = 1024**3
    # Activations of one training batch, checked at submit with the chosen batch size
    # (`core.plan.check_memory`): a fifth of an 80 GB GPU, so a class can share it.
    max_batch_activation_bytes: int = 16 * 1024**3
    max_name_chars: int = 100  # a network's name is a title on one line
    # The JSON text, checked before parsing: a 500-block spec is about 130 kB.
    max_spec_chars: int = 1_000_000
    # Brackets inside brackets, counted before parsing: a spec nests 3 deep (network,
    # blocks, block); Python's parser fails with RecursionError near 1,000.
    max_depth: int = 32


SPEC_LIMITS = SpecLimits()


def _env_mb(name: str, default_mb: int) -> int:
    """Bytes from the environment variable `name`, given in whole MB, else `default_mb`."""
    raw = os.environ.get(name, "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw) * 1024**2
    if raw:
        logging.getLogger(__name__).warning("%s=%r is not a whole number of MB over 0", name, raw)
    return default_mb * 1024**2


@dataclass(frozen=True, kw_only=True)
class DataLimits:
    """Caps on what a dataset request or an uploaded zip may cost the server."""

    max_samples: int = 60_000  # Shapes images per request; MNIST's training set size
    min_side: int = 8  # the digits' native size
    max_side: int = 128  # side images are resized to; 4x CIFAR, still cheap on a CPU
    max_tensor_bytes: int = 2 * 1024**3  # one dataset as float32 (CIFAR-10 train: 0.6 GB)
    max_cache_bytes: int = 6 * 1024**3  # all cached datasets together, shared by all users
    max_upload_bytes: int = 100 * 1024**2  # the zip as uploaded
    max_unzipped_bytes: int = 300 * 1024**2  # counted while decompressing, never declared
    max_entries: int = 10_000  # files and folders in one zip
    max_ratio: int = 100  # decompressed / compressed per entry; zip bombs reach 1000+
    ratio_floor_bytes: int = 1024**2  # below this an entry may compress well (a flat icon)
    max_pixels: int = 4096 * 4096  # per image, read from its header before decoding
    max_classes: int = 100
    min_per_class: int = 10  # images per class in an upload; fewer cannot be split
    # One upload's whole check: decoding runs at about 40 M pixels/s on one busy core, so
    # 500 M pixels is about 12 s (2,000 images of 500x500, or 30 of 16 M pixels; JPEGs
    # count at the reduced scale they are decoded at, often 1/64 of their pixels).
    max_total_pixels: int = 500_000_000
    max_check_seconds: float = 20.0  # the page waits for the check; checked between files
    # Zips kept on disk, in bytes of the files. Per browser: three zips at the upload cap,
    # so a student can keep a few data sets; the oldest one no run uses makes room first.
    # In all: a class of 30 with one 100 MB zip each, and room to spare. Set in MB by
    # RESNET_EXPLORER_UPLOADS_PER_BROWSER_MB and RESNET_EXPLORER_UPLOADS_TOTAL_MB.
    max_kept_per_owner: int = field(
        default_factory=lambda: _env_mb("RESNET_EXPLORER_UPLOADS_PER_BROWSER_MB", 300)
    )
    max_kept_bytes: int = field(
        default_factory=lambda: _env_mb("RESNET_EXPLORER_UPLOADS_TOTAL_MB", 5_000)
    )


DATA_LIMITS = DataLimits()


# -- scheduling (core/scheduling.py) -------------------------------------------------------

# Of the GPU's free memory, what all runs together may hold by the plan's estimate: the
# estimate leaves out the allocator's cache and each process's CUDA context (about 0.5
# GB), so a fifth stays spare. Set by RESNET_EXPLORER_GPU_SHARE.
GPU_SHARE = 0.8
# Runs on one GPU at once even when their memory fits: a class of 30 in rounds of 8
# keeps each run's share of the GPU's time large enough to see its charts move.
MAX_GPU_RUNS = 8
# Waiting or running runs per client address, whatever its `?me=` tokens: two browsers
# of the default 3 on one shared computer. Set by RESNET_EXPLORER_MAX_PER_ADDRESS (0: off,
# for servers behind a proxy, where every student has the proxy's address).
MAX_PER_CLIENT = 6
# "Recently", for the fair queue and the per-owner quota: one lesson.
FAIR_WINDOW_S = 3600.0


def env_number(env, name: str, default: float, low: float, high: float = math.inf) -> float:
    """A number from the environment mapping `env`, else `default` (also when it is not a
    number within [low, high]: logged, so a typo does not go unnoticed)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if low <= value <= high:
        return value
    logging.getLogger(__name__).warning("%s=%r is not a number from %g to %g", name, raw, low, high)
    return default


@dataclass(frozen=True, kw_only=True)
class InsideLimits:
    """Defaults and caps of the Inside experiments (lesion study, loss landscape, errors
    per class, transfer). Each computation holds a core of a shared server while it runs,
    so its settings are capped where a bigger one would tell a class nothing more; the
    defaults are sized to finish within the issue's times on a 2-core CPU (bench/inside.py).
    """

    # Lesion study. 1,000 validation images give an accuracy to within about 1.5 points
    # (binomial standard error at 50 %), enough to tell a smooth decline from a collapse.
    lesion_images: int = 1000
    max_lesion_images: int = 100_000  # more than any built-in validation split
    lesion_draws: int = 5  # random sets per k; Veit et al. average over random deletions
    max_lesion_draws: int = 100  # the spread of the k-curve no longer changes visibly
    # Lesioned nets evaluated in one study (single blocks plus every drawn set for every k
    # up to all blocks): each costs about half a forward pass over the images. ResNet-56's
    # 27 blocks at 100 draws are 2,700; ResNet-110's 54 blocks need 90 draws or fewer.
    max_lesion_sets: int = 5_000
    # Loss landscape. 11x11 points on 256 images: Li et al.'s picture at classroom size,
    # about a minute for ResNet-20 twins on a 2-core CPU.
    landscape_grid: int = 11
    max_landscape_grid: int = 101  # 10,201 evaluations a net: for a GPU
    landscape_images: int = 256
    max_landscape_images: int = 50_000  # a whole CIFAR-10 training set
    max_landscape_span: float = 10.0  # |alpha| beyond 10 filter norms is far off any minimum
    # CPU default: the images of a landscape are cut so that all of it is at most this many
    # multiply-adds (measured: ResNet-20 twins at 32x32, 11x11 on 256 images, 2.5e12, ~70 s).
    landscape_cpu_macs: float = 1.5e12
    # Errors per class: the most confidently wrong images kept (a gallery of 4 rows of 6)
    mistakes: int = 24
    max_mistakes: int = 1000  # a page of thumbnails a browser still draws
    # Transfer race: two nets trained in turn, as a plain-vs-residual race (RACE_STEPS).
    transfer_steps: int = 300
    max_transfer_steps: int = 100_000  # the Train page's step cap for one setting


INSIDE_LIMITS = InsideLimits()
