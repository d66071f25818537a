"""Every dataset as one `TensorData`: built-in Shapes and digits, torchvision's MNIST,
Fashion-MNIST and CIFAR-10, and a user's zip of class folders (`core.uploads`).

Files live in the data directory: the `root` argument, else $RESNET_EXPLORER_DATA, else
~/.cache/resnet-explorer/data. Results are cached process-wide: never change one in place.
What a dataset is (`DataRequest`, `TensorData`, `DataError`) lives in `core.datasets`
and is importable from here too.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from core.datasets import (
    DATA_ENV,
    DATASETS,
    SHAPES_DEFAULT_N,
    DataError,
    DataRequest,
    DatasetInfo,
    TensorData,
    data_root,
)
from core.limits import DATA_LIMITS, DataLimits
from core.shapes_data import SHAPE_CLASSES, make_shapes
from core.torchvision_data import read_torchvision
from core.uploads import read_upload

__all__ = [
    "DATASETS",
    "DATA_ENV",
    "SHAPES_DEFAULT_N",
    "DataError",
    "DataRequest",
    "DatasetInfo",
    "TensorData",
    "augment",
    "clear_cache",
    "data_root",
    "load",
]


def augment(
    x: Tensor, *, generator: torch.Generator, padding: int = 4, flip: bool = True
) -> Tensor:
    """Random crop after zero padding, and random horizontal flip, for a whole batch.

    The CIFAR recipe of He et al. 2015 (sec. 4.2): pad 4 pixels, crop back, flip half.
    Offsets come from `generator` (on any device), so an augmented run is reproducible.
    """
    b, _, h, w = x.shape
    draws = torch.randint(0, 2 * padding + 1, (2, b), generator=generator, device=generator.device)
    oy, ox = draws.to(x.device)
    padded = F.pad(x, (padding, padding, padding, padding))  # (B, C, H+2p, W+2p)
    rows = oy[:, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = ox[:, None] + torch.arange(w, device=x.device)  # (B, W)
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # (B,C,H,W)
    if flip:
        heads = torch.rand(b, generator=generator, device=generator.device) < 0.5
        out = torch.where(heads.to(x.device).view(b, 1, 1, 1), out.flip(-1), out)
    return out.contiguous()


# --- the process-wide cache -------------------------------------------------------------

_cache: OrderedDict[tuple, TensorData] = OrderedDict()  # oldest first
_cache_lock = threading.Lock()
_loading: dict[tuple, threading.Lock] = {}  # one lock per key being loaded


def load(
    request: DataRequest,
    *,
    root: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    download: bool = False,
    limits: DataLimits = DATA_LIMITS,
) -> TensorData:
    """The dataset `request` asks for, on `device`; loaded once per process, then shared
    (two users asking at once load it once). `download` lets torchvision fetch a missing
    dataset into the data directory: the app passes True, tests never do.

    Raises:
        DataError: files missing (naming them and where they go), or a cap exceeded.
    """
    device = torch.device(device)
    key = (request, str(data_root(root)), str(device), limits)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        key_lock = _loading.setdefault(key, threading.Lock())
    with key_lock:
        with _cache_lock:
            if key in _cache:
                return _cache[key]
        try:
            if device.type == "cpu":
                data = _load_uncached(request, data_root(root), download, limits)
            else:  # via the cached host copy, which a second device can reuse
                data = load(request, root=root, download=download, limits=limits).to(device)
        except BaseException:
            with _cache_lock:
                _loading.pop(key, None)
            raise
        with _cache_lock:  # cache, then forget the lock: a later caller finds the data
            _cache[key] = data
            _loading.pop(key, None)
            total = sum(d.nbytes for d in _cache.values())
            while total > limits.max_cache_bytes and len(_cache) > 1:  # drop the oldest
                total -= _cache.popitem(last=False)[1].nbytes
    return data


def clear_cache() -> None:
    """Forget every loaded dataset (tests; or to free memory)."""
    with _cache_lock:
        _cache.clear()


# --- loading ------------------------------------------------------------------------------


def _load_uncached(req: DataRequest, root: Path, download: bool, lim: DataLimits) -> TensorData:
    size, masks, test = req.size, None, None
    if req.name == "shapes":
        _check_bytes(req.n, 3, size, lim)
        x, y, masks = make_shapes(req.n, size=size, seed=req.seed)
        classes = SHAPE_CLASSES
    elif req.name == "digits":  # 1,797 8x8 images in 0..16, bundled with scikit-learn
        from sklearn.datasets import load_digits  # slow to import; only when asked for

        digits = load_digits()
        x = torch.from_numpy(digits.images).float().div_(16).unsqueeze(1)  # (N, 1, 8, 8)
        y, classes = torch.from_numpy(digits.target).long(), tuple("0123456789")
    elif req.name == "upload":
        x, y, classes = read_upload(req.upload, size=size, root=root, limits=lim)
    else:
        classes, (x, y), test = read_torchvision(req.name, root, download, lim)

    if req.classes is not None:
        (x, y, masks), test, classes = _keep_classes(req.classes, (x, y, masks), test, classes)
    xv, yv = (x, y) if test is None else test  # validation draws from these
    if test is None:
        val, train = _pick(y, round(req.val_fraction * len(y)), _generator(req.seed, 1))
    else:
        train, val = torch.arange(len(y)), torch.arange(len(yv))
    if req.subset is not None and req.subset < len(train):
        train = train[_pick(y[train], req.subset, _generator(req.seed, 2))[0]]
        n_val = max(len(classes), round(req.subset * req.val_fraction / (1 - req.val_fraction)))
        if n_val < len(val):
            val = val[_pick(yv[val], n_val, _generator(req.seed, 3))[0]]
    _check_bytes(len(train) + len(val), x.shape[1], size, lim)
    x_train = _as_float(x[train], size)
    std, mean = torch.std_mean(x_train, dim=(0, 2, 3), correction=0)
    return TensorData(
        name=req.name,
        classes=tuple(classes),
        x_train=x_train,
        y_train=y[train],
        x_val=_as_float(xv[val], size),
        y_val=yv[val],
        mean=tuple(mean.tolist()),
        std=tuple(s if s > 0 else 1.0 for s in std.tolist()),
        masks_train=None if masks is None else masks[train],
        masks_val=None if masks is None else masks[val],
    )


def _keep_classes(keep: tuple[int, ...], train, test, classes):
    """Only the images of the classes `keep`, relabelled 0, 1, ... in its order."""
    if max(keep) >= len(classes):
        raise DataError(
            f"the class subset names class {max(keep)}, but the data have {len(classes)} "
            f"classes (0 to {len(classes) - 1})",
            fix="pick class numbers the dataset has",
        )
    relabel = torch.full((len(classes),), -1, dtype=torch.long)
    relabel[list(keep)] = torch.arange(len(keep))

    def only(x, y, masks=None):
        mine = relabel[y] >= 0
        return x[mine], relabel[y[mine]], None if masks is None else masks[mine]

    test = None if test is None else only(*test)[:2]
    return only(*train), test, tuple(classes[c] for c in keep)


def _pick(y: Tensor, k: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Split indices of `y` into k picked and the rest, each class in proportion to its size.

    In a random order, the j-th of a class's c members gets the key (j + 0.5) / c; the
    k smallest keys take about k * c / N of each class, never off by more than one.
    """
    order = torch.randperm(len(y), generator=gen)
    shuffled = y[order]
    onehot = F.one_hot(shuffled, int(y.max()) + 1)  # (N, K)
    rank = (onehot.cumsum(0) - 1).gather(1, shuffled[:, None]).squeeze(1)
    keys = (rank + 0.5) / onehot.sum(0)[shuffled]
    by_key = order[torch.argsort(keys, stable=True)]
    return by_key[:k].sort().values, by_key[k:].sort().values


def _generator(seed: int, stream: int) -> torch.Generator:
    """An independent generator per use of the seed (the split, the subset, ...)."""
    state = np.random.SeedSequence([seed, stream]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _as_float(x: Tensor, size: int) -> Tensor:
    """uint8 or float images -> float32 in [0, 1] at size x size, in chunks to bound memory."""
    out = torch.empty(len(x), x.shape[1], size, size)
    for i in range(0, len(x), 4096):
        chunk = x[i : i + 4096]
        chunk = chunk.float().div_(255) if chunk.dtype == torch.uint8 else chunk.float()
        if chunk.shape[-2:] != (size, size):
            chunk = F.interpolate(
                chunk, size=(size, size), mode="bilinear", antialias=True, align_corners=False
            ).clamp_(0, 1)
        out[i : i + 4096] = chunk
    return out


def _check_bytes(n: int, channels: int, size: int, lim: DataLimits) -> None:
    if (need := n * channels * size * size * 4) > lim.max_tensor_bytes:
        raise DataError(
            f"{n:,} images of {channels}x{size}x{size} need {need / 1024**3:.1f} GB, over the "
            f"cap of {lim.max_tensor_bytes / 1024**3:.1f} GB",
            fix="ask for a subset or a smaller size",
        )
