"""What a dataset is: the catalogue (`DATASETS`), a request for one (`DataRequest`), the
loaded tensors (`TensorData`), where files live (`data_root`), and `DataError`.

No loading here: `core.data` loads, with its readers `core.uploads` and
`core.torchvision_data`; all three import this module and none imports another back.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from core import checks
from core.errors import ExplainedError
from core.limits import DATA_LIMITS
from core.words import N_

DATA_ENV = "RESNET_EXPLORER_DATA"
SHAPES_DEFAULT_N = 6_000
MAX_SEED = 2**31 - 1  # as TrainConfig's seed


class DataError(ExplainedError):
    """A dataset that cannot be loaded. The message says what is wrong and what to do."""


@dataclass(frozen=True, kw_only=True)
class DatasetInfo:
    """What the app shows about a dataset before loading it."""

    title: str
    native_size: int  # side in pixels as stored; a request may resize
    offline: bool  # built in: works without internet
    augment: bool  # crop and flip suit its images (objects, not digits or glyphs)


DATASETS: dict[str, DatasetInfo] = {
    name: DatasetInfo(title=title, native_size=side, offline=offline, augment=augment)
    for name, title, side, offline, augment in (
        ("shapes", N_("Shapes"), 32, True, False),
        ("digits", N_("Digits"), 8, True, False),
        ("mnist", "MNIST", 28, False, False),
        ("fashion_mnist", "Fashion-MNIST", 28, False, False),
        ("cifar10", "CIFAR-10", 32, False, True),
        ("upload", N_("Your images"), 32, True, True),
    )
}


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data directory: `root`, else $RESNET_EXPLORER_DATA, else the user's cache."""
    if root is None:
        root = os.environ.get(DATA_ENV) or Path.home() / ".cache" / "resnet-explorer" / "data"
    return Path(root).expanduser().resolve()


@dataclass(frozen=True, kw_only=True)
class DataRequest:
    """Which data, at which size, split how. Hashable: it is the cache key.

    Raises:
        DataError: a field out of range, naming it, the allowed values and what to do.
    """

    name: str = "shapes"
    size: int | None = None  # side in pixels; None = the dataset's own
    n: int | None = None  # Shapes only: how many images to generate (None = 6,000)
    seed: int = 0  # draws Shapes, the validation split and the subset
    subset: int | None = None  # keep this many training images (class-proportional)
    # Share held out for validation; MNIST and CIFAR use their test split instead, and
    # use this share only to size the validation subset.
    val_fraction: float = 0.2
    upload: str | None = None  # for name "upload": the zip's SHA-256 from import_upload
    # Keep only these classes (indices into the dataset's own), relabelled 0, 1, ... in
    # this order: a second task from the same images (lesson 9: digits 0-4, then 5-9).
    classes: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        lim = DATA_LIMITS
        checks.choice(self.name, N_("the dataset"), DATASETS, error=DataError)
        size = DATASETS[self.name].native_size if self.size is None else self.size
        checks.whole(size, N_("the image size (px)"), lim.min_side, lim.max_side, error=DataError)
        object.__setattr__(self, "size", size)  # so 'native' and its number share a cache key
        if self.name == "shapes":
            n = SHAPES_DEFAULT_N if self.n is None else self.n
            fix = N_("draw at least two of each of the six shapes") if n < 12 else None
            checks.whole(
                n, N_("the number of Shapes"), 12, lim.max_samples, fix=fix, error=DataError
            )
            object.__setattr__(self, "n", n)
        elif self.n is not None:
            raise DataError(
                "n sets how many Shapes to draw", fix=f"for {self.name} use subset instead"
            )
        checks.whole(self.seed, N_("the seed"), 0, MAX_SEED, error=DataError)
        if self.subset is not None:
            checks.whole(
                self.subset, N_("the training subset"), 10, lim.max_samples, error=DataError
            )
        checks.number(self.val_fraction, N_("the validation share"), 0.05, 0.5, error=DataError)
        if self.classes is not None:  # a list when read back from JSON: the key must hash
            object.__setattr__(self, "classes", _class_subset(self.classes))
        is_digest = isinstance(self.upload, str) and re.fullmatch("[0-9a-f]{64}", self.upload)
        if (self.name == "upload") != bool(is_digest):
            raise DataError(
                "an uploaded dataset is named by the 64-character SHA-256 that import_upload "
                "returns, and only name='upload' takes one"
            )


def _class_subset(classes) -> tuple[int, ...]:
    """A class subset as a tuple of at least two different indices; DataError if not."""
    picked = tuple(classes) if isinstance(classes, (list, tuple)) else ()
    if (
        len(picked) < 2
        or len(set(picked)) != len(picked)
        or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in picked)
    ):
        raise DataError(
            f"the class subset must be two or more different class numbers, got {classes!r}",
            fix="write e.g. classes=(5, 6, 7, 8, 9)",
        )
    return picked


@dataclass(frozen=True, kw_only=True, eq=False)
class TensorData:
    """A whole dataset as tensors on one device, ready to index.

    Images are float32 in [0, 1], (N, C, H, W); labels int64 (N,); masks, where the
    dataset has them (Shapes), bool (N, H, W), True on the object. `mean` and `std` are
    the training images' per-channel statistics: the trainer and the attribution copies
    normalise with them.
    """

    name: str
    classes: tuple[str, ...]
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    mean: tuple[float, ...]  # per channel, over the training images
    std: tuple[float, ...]
    masks_train: Tensor | None = None
    masks_val: Tensor | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self._tensors().values() if t is not None)

    def to(self, device: str | torch.device) -> TensorData:
        moved = {k: None if t is None else t.to(device) for k, t in self._tensors().items()}
        return dataclasses.replace(self, **moved)

    def batches(
        self,
        batch_size: int,
        *,
        generator: torch.Generator,
        device: str | torch.device | None = None,
        drop_last: bool = False,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """One epoch of shuffled (images, labels) training batches, by indexing a permutation.

        The order comes from `generator` alone (on any device), so two runs given
        generators with one seed see the same batches. `device` moves each batch; by
        default batches stay where the data is.
        """
        n = len(self.y_train)
        order = torch.randperm(n, generator=generator, device=generator.device)
        order = order.to(self.device)
        stop = n - n % batch_size if drop_last else n
        for i in range(0, stop, batch_size):
            idx = order[i : i + batch_size]
            x, y = self.x_train[idx], self.y_train[idx]
            if device is not None:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            yield x, y

    def _tensors(self) -> dict[str, Tensor | None]:
        names = ("x_train", "y_train", "x_val", "y_val", "masks_train", "masks_val")
        return {k: getattr(self, k) for k in names}
