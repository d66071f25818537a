"""MNIST, Fashion-MNIST and CIFAR-10 through torchvision's own dataset classes.

Downloads into the data directory when asked and online; offline, the error names the
missing files and where they go. Hand-copied .gz files are unpacked under a byte cap.
"""

from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path

import torch

from core.datasets import DATASETS, DataError
from core.limits import DataLimits

_CLASSES = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}
_log = logging.getLogger(__name__)  # the causes users are not shown: exception texts


def read_torchvision(name: str, root: Path, download: bool, lim: DataLimits):
    """(classes, (train images uint8 NCHW, labels), (test images, labels)) via torchvision.

    Its own dataset classes read the files, so the on-disk formats are exactly theirs.
    CIFAR's batches are pickles: torchvision unpickles them only after their MD5 matches
    the official files, so nothing but the real CIFAR-10 is ever unpickled.
    """
    import torchvision.datasets as tvd

    cls = getattr(tvd, _CLASSES[name])
    folder, missing = _missing_files(cls, root, lim)
    failure = ""
    if missing and download:
        try:
            cls(str(root), train=True, download=True)  # fetches both splits
        except (OSError, RuntimeError) as e:  # URLError is an OSError
            _log.warning("downloading %s failed: %r", name, e)
            failure = "The download failed (is this server offline?). "
        folder, missing = _missing_files(cls, root, lim)
    if missing:
        cifar = "the folder cifar-10-batches-py from cifar-10-python.tar.gz into the data folder"
        raise DataError(
            f"{failure}{DATASETS[name].title} is not on this server: {folder} lacks "
            f"{', '.join(missing)}. Load it once while online to download it, or copy "
            f"{cifar if name == 'cifar10' else 'these files (or their .gz downloads) there'}."
        )
    try:
        splits = [cls(str(root), train=train) for train in (True, False)]
    except (RuntimeError, ValueError, TypeError, AssertionError) as e:
        _log.warning("reading %s from %s failed: %r", name, folder, e)
        raise DataError(
            f"the {DATASETS[name].title} files in {folder} are there but damaged or not "
            "the official ones",
            fix="delete them and load the dataset again",
        ) from None
    pools = [(torch.as_tensor(ds.data), torch.as_tensor(ds.targets)) for ds in splits]
    # MNIST: (N, H, W) -> (N, 1, H, W); CIFAR: (N, H, W, C) -> (N, C, H, W)
    pools = [(x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2), y) for x, y in pools]
    return tuple(splits[0].classes), pools[0], pools[1]


def _missing_files(cls: type, root: Path, lim: DataLimits) -> tuple[Path, list[str]]:
    """The folder torchvision reads, and the files it needs that are not there."""
    if hasattr(cls, "base_folder"):  # CIFAR: the python batches, checked by MD5 later
        folder = root / cls.base_folder
        names = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
        return folder, [f for f in names if not (folder / f).is_file()]
    # MNIST-like: torchvision reads the un-gzipped IDX files from <root>/<Class>/raw.
    folder = root / cls.__name__ / "raw"
    names = [os.path.splitext(os.path.basename(url))[0] for url, _ in cls.resources]
    for name in names:  # unpack .gz files copied in by hand, as torchvision's download does
        packed, tmp = folder / f"{name}.gz", folder / f".{name}.part"
        if (folder / name).is_file() or not packed.is_file():
            continue
        try:
            with gzip.open(packed, "rb") as f:
                data = f.read(lim.max_unzipped_bytes + 1)  # real bytes, at most the cap
        except (OSError, EOFError) as e:
            _log.warning("unpacking %s failed: %r", packed, e)
            raise DataError(f"{packed} is not a readable .gz file", fix="replace it") from None
        if len(data) > lim.max_unzipped_bytes:
            raise DataError(f"{packed} unpacks to more than {lim.max_unzipped_bytes:,} bytes")
        tmp.write_bytes(data)
        os.replace(tmp, folder / name)  # atomic: never half a file under the real name
    return folder, [f for f in names if not (folder / f).is_file()]
