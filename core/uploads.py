"""A user's zips of class folders, kept on the server: checked in full, named by hash,
owned by the browsers that uploaded them, and held to a per-browser and a total quota.

`core.upload_zip` reads a zip (and is where it is treated as hostile); this module keeps
the accepted ones in `<data dir>/uploads/` with an index of owners (`index.json`),
written atomically under a process-wide lock: one server process writes there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from core.datasets import DataError, data_root
from core.limits import DATA_LIMITS, DataLimits
from core.upload_zip import IMAGE_FORMATS, UploadError, read_zip
from core.words import say

__all__ = [
    "IMAGE_FORMATS",
    "UploadError",
    "UploadReport",
    "import_upload",
    "prune_uploads",
    "read_upload",
    "read_zip",
    "uploads_folder",
]

_INDEX = "index.json"  # {"owners": {digest: {owner key: last upload time}}}
_DIGEST = re.compile(r"[0-9a-f]{64}")
_MB = 1024**2
_lock = threading.Lock()  # the index and the files in the folder change under it
_log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class UploadReport:
    """What an accepted zip holds; `digest` names it in `DataRequest(upload=...)`."""

    digest: str  # SHA-256 of the zip's bytes, 64 hex digits
    classes: tuple[str, ...]  # sorted folder names, as torchvision's ImageFolder sorts them
    counts: tuple[int, ...]  # readable images per class
    skipped: tuple[tuple[str, str], ...]  # (entry name, why) for each file left out


def uploads_folder(root: str | os.PathLike | None = None) -> Path:
    """Where accepted zips are kept: `<data dir>/uploads`."""
    return data_root(root) / "uploads"


def import_upload(
    data: bytes,
    *,
    owner: str | None = None,
    keep: Collection[str] = (),
    root: str | os.PathLike | None = None,
    limits: DataLimits = DATA_LIMITS,
) -> UploadReport:
    """Check an uploaded zip in full and keep it in `<data dir>/uploads/<sha256>.zip`.

    `owner` (the browser's id) is recorded as one of the zip's owners, and the zips a
    browser owns may take up to `limits.max_kept_per_owner` bytes: past that, its oldest
    zips not in `keep` (the digests its runs still use) are let go to make room. All
    kept zips together may take up to `limits.max_kept_bytes`.

    Raises:
        UploadError: the zip is unsafe, too big, not laid out as class folders, or the
            browser's or the server's quota for kept zips is full.
    """
    if len(data) > limits.max_upload_bytes:
        raise UploadError(
            say(
                "the zip is {mb:.0f} MB; this server takes up to {limit:.0f} MB",
                mb=len(data) / _MB,
                limit=limits.max_upload_bytes / _MB,
            ),
            fix=say("upload fewer or smaller images"),
        )
    _, labels, classes, skipped = read_zip(
        data,
        size=limits.min_side,  # small and fast; JPEGs decoded at the scale any load uses
        limits=limits,
        draft_side=limits.max_side,
        max_seconds=limits.max_check_seconds,
    )
    digest = hashlib.sha256(data).hexdigest()
    folder = uploads_folder(root)
    folder.mkdir(parents=True, exist_ok=True)
    key = None if owner is None else _owner_key(owner)
    with _lock:
        index = _read_index(folder)
        for gone in _make_room(folder, index, digest, len(data), key, set(keep), limits):
            _release(folder, index, gone, key)
        _write_atomically(folder / f"{digest}.zip", data)
        owners = index.setdefault(digest, {})
        if key is not None:  # later than every time recorded, so the order is strict
            latest = max((t for o in index.values() for t in o.values()), default=0.0)
            owners[key] = max(time.time(), latest + 1e-6)
        _write_index(folder, index)
    counts = torch.bincount(labels, minlength=len(classes)).tolist()
    return UploadReport(digest=digest, classes=classes, counts=tuple(counts), skipped=skipped)


def read_upload(
    digest: str, *, size: int, root: str | os.PathLike | None = None, limits: DataLimits
) -> tuple[Tensor, Tensor, tuple[str, ...]]:
    """A stored upload as uint8 images (N, 3, size, size), labels and class names.

    The stored zip is checked again as if new (but not timed: it passed the clock once):
    a file on disk is no more trusted.
    """
    try:
        if not _DIGEST.fullmatch(digest):
            raise FileNotFoundError(digest)
        data = (uploads_folder(root) / f"{digest}.zip").read_bytes()
    except (FileNotFoundError, IsADirectoryError):  # never kept, or pruned since
        raise DataError(
            say(
                "the uploaded images {digest!r}... are no longer on this server",
                digest=digest[:12],
            ),
            fix=say("upload the zip again"),
        ) from None
    images, labels, classes, _ = read_zip(data, size=size, limits=limits)
    return images, labels, classes


def prune_uploads(keep: Collection[str], *, root: str | os.PathLike | None = None) -> list[str]:
    """Delete every kept zip whose digest is not in `keep` (those the runs still use),
    and half-written leftovers; returns the digests deleted, sorted."""
    folder = uploads_folder(root)
    if not folder.is_dir():
        return []
    keep = set(keep)
    with _lock:
        index = _read_index(folder)
        gone = sorted(d for d in _sizes(folder) if d not in keep)
        for digest in gone:
            (folder / f"{digest}.zip").unlink(missing_ok=True)
            index.pop(digest, None)
        for part in folder.glob("*.part"):  # left by a crash mid-write; none is in flight
            part.unlink(missing_ok=True)
        _write_index(folder, index)
    return gone


def _make_room(
    folder: Path,
    index: dict[str, dict[str, float]],
    digest: str,
    nbytes: int,
    key: str | None,
    keep: set[str],
    lim: DataLimits,
) -> list[str]:
    """The owner's zips to let go (oldest first) so that this one fits both quotas.

    Raises:
        UploadError: it does not fit even so; nothing has been let go.
    """
    sizes = _sizes(folder)
    release, freed = [], 0
    if key is not None:
        adding = 0 if key in index.get(digest, {}) else nbytes
        mine = sorted((t[key], d) for d, t in index.items() if key in t and d in sizes)
        owned = sum(sizes[d] for _, d in mine)
        for _, d in mine:
            if owned + adding <= lim.max_kept_per_owner:
                break
            if d != digest and d not in keep:
                release.append(d)
                owned -= sizes[d]
                freed += sizes[d] if set(index[d]) == {key} else 0  # the file goes too
        if owned + adding > lim.max_kept_per_owner:
            raise UploadError(
                say(
                    "this browser keeps {owned} of uploaded zips that its runs still use, "
                    "and this one adds {adding}: over the {limit} each browser may keep",
                    owned=_size(owned),
                    adding=_size(adding),
                    limit=_size(lim.max_kept_per_owner),
                ),
                fix=say("delete runs you no longer need on the Runs page, or upload a smaller zip"),
            )
    total = sum(sizes.values()) - freed + (0 if digest in sizes else nbytes)
    if total > lim.max_kept_bytes:
        raise UploadError(
            say(
                "this server's space for uploaded zips is full: this zip would bring it to "
                "{total}, over the {limit} it may keep",
                total=_size(total),
                limit=_size(lim.max_kept_bytes),
            ),
            fix=say("ask whoever runs the server to delete old runs, or upload a smaller zip"),
        )
    return release


def _release(folder: Path, index: dict[str, dict[str, float]], digest: str, key: str) -> None:
    """`key` no longer owns `digest`; a zip nobody owns is deleted."""
    owners = index.get(digest, {})
    owners.pop(key, None)
    if not owners:
        (folder / f"{digest}.zip").unlink(missing_ok=True)
        index.pop(digest, None)


def _size(n: int) -> str:
    """Bytes for people: '740 KB', '2.5 MB', '300 MB'."""
    if n < _MB:
        return say("{n:.0f} KB", n=n / 1024)
    return say("{n:.1f} MB", n=n / _MB) if n < 10 * _MB else say("{n:,.0f} MB", n=n / _MB)


def _sizes(folder: Path) -> dict[str, int]:
    """Bytes of every kept zip, by digest: what is on disk, whatever the index says."""
    sizes = {}
    for path in folder.glob("*.zip"):
        if _DIGEST.fullmatch(path.stem):
            try:
                sizes[path.stem] = path.stat().st_size
            except FileNotFoundError:
                continue
    return sizes


def _owner_key(owner: str) -> str:
    """The owner as kept in the index: a hash, so the file never holds a browser's token."""
    return hashlib.sha256(owner.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _read_index(folder: Path) -> dict[str, dict[str, float]]:
    """{digest: {owner key: time}}; empty when missing or unreadable (owners forgotten,
    the zips themselves still counted by `_sizes`)."""
    try:
        raw = json.loads((folder / _INDEX).read_text(encoding="utf-8"))
        owners = raw["owners"]
        return {
            d: {k: float(t) for k, t in o.items() if isinstance(t, (int, float))}
            for d, o in owners.items()
            if _DIGEST.fullmatch(d) and isinstance(o, dict)
        }
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        _log.warning("ignoring the unreadable upload index in %s: %s", folder, e)
        return {}


def _write_index(folder: Path, index: dict[str, dict[str, float]]) -> None:
    sizes = _sizes(folder)
    kept = {d: o for d, o in sorted(index.items()) if d in sizes}
    text = json.dumps({"version": 1, "owners": kept}, indent=1)
    _write_atomically(folder / _INDEX, text.encode("utf-8"), replace=True)


def _write_atomically(target: Path, data: bytes, *, replace: bool = False) -> None:
    """Write to a temporary name, then rename: never half a file under the real name."""
    if target.is_file() and not replace:
        return
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".part", delete=False) as f:
        try:
            f.write(data)
        except OSError:
            os.unlink(f.name)
            raise
    os.replace(f.name, target)
