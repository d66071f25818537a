"""A user's zip of class folders (cat/..., dog/...), treated as hostile until checked.

Nothing in it is extracted, unpickled or executed: entries are read in memory under caps
on count and on bytes actually decompressed; only the zip itself is kept, named by hash.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import os
import re
import tempfile
import warnings
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from core.datasets import DataError, data_root
from core.limits import DATA_LIMITS, DataLimits

# Pillow formats we decode. Not EPS (Pillow runs Ghostscript on it), nor the rarer
# plugins, whose parsers see less use and so less scrutiny.
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
_JUNK = {"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"}  # left by zip tools; ignored
_MB = 1024**2


class UploadError(DataError):
    """A zip rejected as a whole. The message says why and how to make one that works."""


@dataclass(frozen=True, kw_only=True)
class UploadReport:
    """What an accepted zip holds; `digest` names it in `DataRequest(upload=...)`."""

    digest: str  # SHA-256 of the zip's bytes, 64 hex digits
    classes: tuple[str, ...]  # sorted folder names, as torchvision's ImageFolder sorts them
    counts: tuple[int, ...]  # readable images per class
    skipped: tuple[tuple[str, str], ...]  # (entry name, why) for each file left out


def import_upload(
    data: bytes, *, root: str | os.PathLike | None = None, limits: DataLimits = DATA_LIMITS
) -> UploadReport:
    """Check an uploaded zip in full and keep it in `<data dir>/uploads/<sha256>.zip`.

    Raises:
        UploadError: the zip is unsafe, too big, or not laid out as class folders.
    """
    if len(data) > limits.max_upload_bytes:
        raise UploadError(
            f"the zip is {len(data) / _MB:.0f} MB; this server takes up to "
            f"{limits.max_upload_bytes / _MB:.0f} MB. Upload fewer or smaller images"
        )
    _, labels, classes, skipped = read_zip(data, size=limits.min_side, limits=limits)
    digest = hashlib.sha256(data).hexdigest()
    folder = data_root(root) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{digest}.zip"
    if not target.is_file():  # write to a temporary name, then rename: never half a file
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".part", delete=False) as f:
            try:
                f.write(data)
            except OSError:
                os.unlink(f.name)
                raise
        os.replace(f.name, target)
    counts = torch.bincount(labels, minlength=len(classes)).tolist()
    return UploadReport(digest=digest, classes=classes, counts=tuple(counts), skipped=skipped)


def read_upload(
    digest: str, *, size: int, root: str | os.PathLike | None = None, limits: DataLimits
) -> tuple[Tensor, Tensor, tuple[str, ...]]:
    """A stored upload as uint8 images (N, 3, size, size), labels and class names.

    The stored zip is checked again as if new: a file on disk is no more trusted.
    """
    folder = data_root(root) / "uploads"
    if not re.fullmatch(r"[0-9a-f]{64}", digest) or not (folder / f"{digest}.zip").is_file():
        raise DataError(
            f"the uploaded images {digest[:12]!r}... are not in {folder}; upload the zip again"
        )
    path = folder / f"{digest}.zip"
    images, labels, classes, _ = read_zip(path.read_bytes(), size=size, limits=limits)
    return images, labels, classes


def read_zip(
    data: bytes, *, size: int, limits: DataLimits = DATA_LIMITS
) -> tuple[Tensor, Tensor, tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Decode a zip of class folders: images (N, 3, size, size) uint8, labels, classes, skipped.

    Images are centre-cropped to a square and resized. Files that are not readable
    images are skipped and named in `skipped`; anything unsafe rejects the whole zip.

    Raises:
        UploadError: with a message a teacher can read out.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        raise UploadError(
            "this file is not a zip archive; zip your class folders (cat/, dog/, ...) and "
            "upload the .zip"
        ) from None
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise UploadError(
            f"the zip holds {len(infos):,} files and folders; this server takes up to "
            f"{limits.max_entries:,}. Upload fewer images"
        )
    for info in infos:
        _check_entry(info)
    files, skipped = _class_files(infos)
    classes = tuple(sorted({c for c, _ in files}))
    _check_classes(classes, limits)
    need = len(files) * 3 * size * size * 4  # as float32, once loaded
    if need > limits.max_tensor_bytes:
        raise UploadError(
            f"{len(files):,} images at {size}x{size} pixels would not fit this server's "
            "memory cap; choose a smaller image size or upload fewer images"
        )

    images, labels, budget = [], [], [limits.max_unzipped_bytes]
    for cls, info in files:
        raw = _read_entry(archive, info, budget, limits, len(data))
        pixels, why = (
            _decode(raw, size, limits) if raw is not None else (None, "is damaged inside the zip")
        )
        if pixels is None:
            skipped.append((info.filename, why))
        else:
            images.append(pixels)
            labels.append(classes.index(cls))
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes)).tolist()
    short = [
        f"{c!r} has {k}" for c, k in zip(classes, counts, strict=True) if k < limits.min_per_class
    ]
    if short:
        raise UploadError(
            f"each class needs at least {limits.min_per_class} readable images, but "
            f"{', '.join(short)}; add images to those folders or remove them"
        )
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()  # (N, 3, S, S)
    return x, torch.tensor(labels, dtype=torch.int64), classes, tuple(skipped)


def _check_entry(info: zipfile.ZipInfo) -> None:
    """Reject names that could escape a folder if extracted, and links: one is enough."""
    name = info.filename
    if ".." in re.split(r"[\\/]", name):
        why = "climbs out of its folder with '..'"
    elif name.startswith(("/", "\\")):
        why = "is an absolute path"
    elif re.match(r"[A-Za-z]:", name):
        why = "starts with a drive letter"
    elif (info.external_attr >> 16) & 0o170000 == 0o120000:
        why = "is a symbolic link"
    else:
        return
    raise UploadError(
        f"the zip entry {name!r} {why}, which a safe zip never has; zip the class folders "
        "themselves (cat/, dog/, ...) with a standard tool and upload that"
    )


def _class_files(infos: list[zipfile.ZipInfo]):
    """[(class, entry)] for files under a class folder, and [(name, why)] for the others.

    Like ImageFolder, any file below a class folder belongs to it. One folder wrapping
    all the class folders (what zipping a folder makes) is looked through.
    """
    entries = []
    for info in infos:
        parts = [p for p in re.split(r"[\\/]", info.filename) if p]
        if not info.is_dir() and parts and not any(p in _JUNK or p[0] == "." for p in parts):
            entries.append((parts, info))
    tops = {parts[0] for parts, _ in entries}
    if len(tops) == 1 and any(len(parts) > 2 for parts, _ in entries):
        entries = [(parts[1:], info) for parts, info in entries]
    files, skipped = [], []
    for parts, info in entries:
        if len(parts) < 2:
            skipped.append((info.filename, "is not inside a class folder"))
        elif not parts[0].isprintable():
            skipped.append((info.filename, "has a class folder name with control characters"))
        else:
            files.append((parts[0], info))
    return files, skipped


def _check_classes(classes: tuple[str, ...], limits: DataLimits) -> None:
    if not classes:
        raise UploadError(
            "found no class folders: the zip must hold one folder per class with the "
            "images inside, e.g. cat/001.jpg and dog/001.jpg"
        )
    if len(classes) == 1:
        raise UploadError(
            f"found only one class folder, {classes[0]!r}; a classifier needs at least "
            "two: add a folder for each other class"
        )
    if len(classes) > limits.max_classes:
        raise UploadError(
            f"found {len(classes)} class folders; this server takes up to "
            f"{limits.max_classes}. Merge or remove some"
        )


def _read_entry(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: list[int], lim: DataLimits, n: int
) -> bytes | None:
    """The entry's bytes, counted as they come out of the decompressor; None if damaged.

    Declared sizes are never trusted: `budget` holds the bytes the whole zip may still
    decompress to, and one entry may not expand more than `max_ratio` times.
    """
    packed = max(1, min(info.compress_size, n))
    cap = max(lim.ratio_floor_bytes, lim.max_ratio * packed)
    chunks, got = [], 0
    try:
        with archive.open(info) as f:
            while chunk := f.read(1 << 16):
                got += len(chunk)
                budget[0] -= len(chunk)
                if budget[0] < 0:
                    raise UploadError(
                        f"the zip unpacks to more than {lim.max_unzipped_bytes / _MB:.0f} MB "
                        "(counted while unpacking); upload fewer or smaller images"
                    )
                if got > cap:
                    raise UploadError(
                        f"the zip entry {info.filename!r} expands more than {lim.max_ratio} "
                        "times its packed size, as a zip bomb does; it was not unpacked"
                    )
                chunks.append(chunk)
    except UploadError:
        raise
    except (
        zipfile.BadZipFile,
        RuntimeError,
        NotImplementedError,
        EOFError,
        OSError,
        ValueError,
        zlib.error,
        lzma.LZMAError,
    ):
        return None  # bad CRC, encrypted, unknown compression, cut short
    return b"".join(chunks)


def _decode(raw: bytes, size: int, lim: DataLimits) -> tuple[np.ndarray | None, str]:
    """(size, size, 3) uint8 pixels, or None and why the file was skipped."""
    if not raw:
        return None, "is empty (0 bytes)"
    try:
        # Pillow warns above its own pixel cap and raises above twice that; make the
        # warning an error too. (catch_warnings is process-wide: our lower cap below,
        # read from the header before any decoding, is the line that holds.)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw), formats=IMAGE_FORMATS) as img:
                w, h = img.size
                if w * h > lim.max_pixels:
                    return None, f"is {w}x{h} pixels, over the cap of {lim.max_pixels:,}"
                img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, faster
                square = ImageOps.fit(img.convert("RGB"), (size, size), Image.Resampling.BILINEAR)
                return np.asarray(square, dtype=np.uint8), ""
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        return None, "has so many pixels it may be a decompression bomb"
    except UnidentifiedImageError:
        return None, f"is not an image this app reads ({', '.join(IMAGE_FORMATS)})"
    except Exception:  # Pillow's decoders raise many types on damaged files
        return None, "is damaged or cut short"
