"""Reading a user's zip of class folders (cat/..., dog/...), hostile until checked.

Nothing in it is extracted, unpickled or executed: entries are read in memory under caps
on their count, on the bytes actually decompressed and the pixels actually decoded in the
whole zip, and on the time the check may take. `core.uploads` keeps zips; this only reads.
"""

from __future__ import annotations

import io
import lzma
import re
import time
import warnings
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from core.datasets import DataError
from core.limits import DATA_LIMITS, DataLimits
from core.words import N_, say

# Pillow formats we decode. Not EPS (Pillow runs Ghostscript on it), nor the rarer
# plugins, whose parsers see less use and so less scrutiny.
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
_JUNK = {"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"}  # left by zip tools; ignored
_LOCAL_HEADER = 30  # bytes of a zip entry's local header before its name
_MB = 1024**2
_REDO = "make the zip again with a standard tool, zipping the class folders themselves"


class UploadError(DataError):
    """A zip rejected as a whole. The message says why and how to make one that works."""


@dataclass
class _Budget:
    """What the rest of one zip may still cost: bytes unpacked, pixels decoded, time."""

    lim: DataLimits
    bytes_left: int
    pixels_left: int
    deadline: float | None  # time.monotonic() past which the check stops; None: no clock

    def spend_bytes(self, n: int) -> None:
        self.bytes_left -= n
        if self.bytes_left < 0:
            raise UploadError(
                f"the zip unpacks to more than {self.lim.max_unzipped_bytes / _MB:.0f} MB "
                "(counted while unpacking)",
                fix="upload fewer or smaller images",
            )

    def spend_pixels(self, n: int) -> None:
        self.pixels_left -= n
        if self.pixels_left < 0:
            raise UploadError(
                f"the images hold more than {self.lim.max_total_pixels:,} pixels in all "
                "(counted while decoding), more than this server reads for one upload",
                fix=f"upload fewer images, or shrink them first (training uses at most "
                f"{self.lim.max_side} px a side)",
            )

    def check_time(self, done: int, total: int) -> None:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise UploadError(
                f"checking the zip ran out of its {self.lim.max_check_seconds:g} s, the most "
                f"this server spends on one upload (stopped after {done:,} of {total:,} files)",
                fix="upload fewer images, or shrink them first",
            )


def read_zip(
    data: bytes,
    *,
    size: int,
    limits: DataLimits = DATA_LIMITS,
    draft_side: int | None = None,
    max_seconds: float | None = None,
) -> tuple[Tensor, Tensor, tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Decode a zip of class folders: images (N, 3, size, size) uint8, labels, classes, skipped.

    Images are centre-cropped to a square and resized. Files that are not readable
    images are skipped and named in `skipped`; anything unsafe rejects the whole zip.
    JPEGs are decoded at a reduced scale that still gives `draft_side` pixels (default
    `size`), and the pixels decoded are what counts against the total. `max_seconds`
    bounds the time, checked between files; None: no clock.

    Raises:
        UploadError: with a message a teacher can read out.
    """
    archive, files, skipped, classes = _open(data, size, limits)
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    budget = _Budget(
        lim=limits,
        bytes_left=limits.max_unzipped_bytes,
        pixels_left=limits.max_total_pixels,
        deadline=deadline,
    )
    images, labels = [], []
    for done, (cls, info) in enumerate(files):
        budget.check_time(done, len(files))
        raw = _read_entry(archive, info, budget, len(data))
        if raw is None:
            pixels, why = None, "is damaged inside the zip"
        else:
            pixels, why = _decode(raw, size, draft_side or size, budget)
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
            say(
                "each class needs at least {n} readable images, but {short}",
                n=limits.min_per_class,
                short=", ".join(short),
            ),
            fix=N_("add images to those folders or remove them"),
        )
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()  # (N, 3, S, S)
    return x, torch.tensor(labels, dtype=torch.int64), classes, tuple(skipped)


def _open(data: bytes, size: int, limits: DataLimits):
    """The archive, [(class, entry)], [(name, why skipped)] and the sorted class names,
    after every check that needs no decompression."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        raise UploadError(
            N_("this file is not a zip archive"),
            fix=N_("zip your class folders (cat/, dog/, ...) and upload the .zip"),
        ) from None
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise UploadError(
            f"the zip holds {len(infos):,} files and folders; this server takes up to "
            f"{limits.max_entries:,}. Upload fewer images"
        )
    for info in infos:
        _check_entry(info)
    _check_layout(infos, archive.start_dir)
    files, skipped = _class_files(infos)
    classes = tuple(sorted({c for c, _ in files}))
    _check_classes(classes, limits)
    if len(files) * 3 * size * size * 4 > limits.max_tensor_bytes:  # as float32, once loaded
        raise UploadError(
            f"{len(files):,} images at {size}x{size} pixels would not fit this server's memory cap",
            fix="choose a smaller image size or upload fewer images",
        )
    return archive, files, skipped, classes


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
    raise UploadError(f"the zip entry {name!r} {why}, which a safe zip never has", fix=_REDO)


def _check_layout(infos: list[zipfile.ZipInfo], end: int) -> None:
    """Refuse password-protected zips, and entries that share packed bytes.

    Overlapping entries are how a small zip makes a reader unpack the same data
    thousands of times (Fifield, "A better zip bomb", 2019). Each entry's local header
    and packed data must end before the next entry (or the central directory at `end`)
    begins; 30 bytes plus the packed size is a lower bound on that span, so a sound zip
    never trips this.
    """
    if any(info.flag_bits & 0x1 for info in infos):  # bit 0: encrypted (APPNOTE 4.4.4)
        raise UploadError(
            N_("the zip is password-protected"), fix=N_("make one without a password")
        )
    spans = sorted(infos, key=lambda i: i.header_offset)
    for a, b in zip(spans, [*spans[1:], None], strict=True):
        start = end if b is None else b.header_offset
        if a.header_offset + _LOCAL_HEADER + a.compress_size > start:
            other = "the zip's directory" if b is None else repr(b.filename)
            raise UploadError(
                f"the zip entry {a.filename!r} overlaps {other}: they share packed bytes, as "
                "zip bombs' entries do",
                fix=_REDO,
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
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget, n: int
) -> bytes | None:
    """The entry's bytes, counted as they come out of the decompressor; None if damaged.

    Declared sizes are never trusted: `budget` holds the bytes the whole zip may still
    decompress to, and one entry may not expand more than `max_ratio` times.
    """
    lim = budget.lim
    packed = max(1, min(info.compress_size, n))
    cap = max(lim.ratio_floor_bytes, lim.max_ratio * packed)
    chunks, got = [], 0
    try:
        with archive.open(info) as f:
            while chunk := f.read(1 << 16):
                got += len(chunk)
                budget.spend_bytes(len(chunk))
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
        return None  # bad CRC, unknown compression, cut short
    return b"".join(chunks)


def _decode(
    raw: bytes, size: int, draft_side: int, budget: _Budget
) -> tuple[np.ndarray | None, str]:
    """(size, size, 3) uint8 pixels, or None and why the file was skipped."""
    if not raw:
        return None, "is empty (0 bytes)"
    lim = budget.lim
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
                img.draft("RGB", (draft_side, draft_side))  # JPEG: decode at a reduced scale
                budget.spend_pixels(img.size[0] * img.size[1])  # before decoding them
                rgb = _eight_bit(img).convert("RGB")
                square = ImageOps.fit(rgb, (size, size), Image.Resampling.BILINEAR)
                return np.asarray(square, dtype=np.uint8), ""
    except UploadError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        return None, "has so many pixels it may be a decompression bomb"
    except UnidentifiedImageError:
        return None, f"is not an image this app reads ({', '.join(IMAGE_FORMATS)})"
    except Exception:  # Pillow's decoders raise many types on damaged files
        return None, "is damaged or cut short"


def _eight_bit(img: Image.Image) -> Image.Image:
    """16-bit grey ("I;16" and kin, "I" in older Pillows) scaled to 8 bits by its high
    byte, as Pillow already reads 16-bit colour PNGs: convert("RGB") would clip every
    value over 255 and saturate the image to white."""
    if img.mode != "I" and not img.mode.startswith("I;16"):
        return img
    wide = np.asarray(img).astype(np.int64)  # (H, W), 0..65535 from a 16-bit PNG
    return Image.fromarray((np.clip(wide, 0, 65535) >> 8).astype(np.uint8))
