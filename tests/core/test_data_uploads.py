"""A user's zip of class folders: the happy path, and a battery of hostile zips, each
rejected or skipped with its message and nothing written outside the data directory."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import struct
import zipfile
import zlib

import pytest
import torch
from PIL import Image

from core.data import DataError, DataRequest, clear_cache, load
from core.limits import DATA_LIMITS
from core.uploads import UploadError, import_upload, read_upload

# Small caps so every zip here stays tiny and fast.
LIMITS = dataclasses.replace(DATA_LIMITS, min_per_class=3)
RED, BLUE = (255, 0, 0), (0, 0, 255)


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def _png(colour=RED, size=(12, 10)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels: the header is all a reader sees first."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _zip(entries: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, blob in entries.items():
            z.writestr(zipfile.ZipInfo(name), blob, compress_type=zipfile.ZIP_DEFLATED)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16  # what `zip --symlinks` records
            z.writestr(info, target)
    return out.getvalue()


def _classes(n_cat: int = 3, n_dog: int = 3, prefix: str = "") -> dict[str, bytes]:
    cats = {f"{prefix}cat/{i}.png": _png(RED) for i in range(n_cat)}
    return cats | {f"{prefix}dog/{i}.png": _png(BLUE) for i in range(n_dog)}


GOOD = _classes()


def _files(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_a_good_zip_is_kept_by_hash_and_loads_as_tensors(tmp_path):
    blob = _zip(_classes(4, 3) | {"dog/notes.txt": b"hello", "__MACOSX/cat/._0.png": b"junk"})
    root = tmp_path / "data"
    report = import_upload(blob, root=root, limits=LIMITS)
    digest = hashlib.sha256(blob).hexdigest()
    assert report.digest == digest and report.classes == ("cat", "dog")
    assert report.counts == (4, 3)
    assert report.skipped == (
        ("dog/notes.txt", "is not an image this app reads (PNG, JPEG, BMP, GIF, WEBP)"),
    )
    assert _files(tmp_path) == [f"data/uploads/{digest}.zip", "data/uploads/index.json"]

    d = load(DataRequest(name="upload", upload=digest, size=16), root=root, limits=LIMITS)
    assert d.classes == ("cat", "dog") and d.input_shape == (3, 16, 16)
    x = torch.cat([d.x_train, d.x_val])
    y = torch.cat([d.y_train, d.y_val])
    assert sorted(y.tolist()) == [0] * 4 + [1] * 3
    assert torch.equal(x[y == 0], torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1).expand(4, 3, 16, 16))
    assert torch.equal(x[y == 1], torch.tensor([0, 0, 1.0]).view(1, 3, 1, 1).expand(3, 3, 16, 16))


def test_one_folder_around_the_class_folders_is_looked_through(tmp_path):
    report = import_upload(_zip(_classes(prefix="photos/")), root=tmp_path, limits=LIMITS)
    assert report.classes == ("cat", "dog") and report.counts == (3, 3)


def test_a_stored_upload_is_checked_again_and_a_missing_one_named(tmp_path):
    report = import_upload(_zip(_classes()), root=tmp_path, limits=LIMITS)
    x, y, classes = read_upload(report.digest, size=8, root=tmp_path, limits=LIMITS)
    assert x.dtype == torch.uint8 and x.shape == (6, 3, 8, 8) and classes == ("cat", "dog")
    assert y.tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(DataError, match="upload the zip again"):
        read_upload("0" * 64, size=8, root=tmp_path, limits=LIMITS)


@pytest.mark.parametrize(
    ("entries", "symlinks", "limits", "words"),
    [
        ({"../evil.png": _png()} | GOOD, None, LIMITS, r"'../evil.png' climbs out of its folder"),
        ({"cat/../../evil.png": _png()} | GOOD, None, LIMITS, "climbs out of its folder with '..'"),
        ({"..\\evil.png": _png()} | GOOD, None, LIMITS, "climbs out of its folder"),
        ({"/etc/evil.png": _png()} | GOOD, None, LIMITS, "'/etc/evil.png' is an absolute path"),
        ({"C:/evil.png": _png()} | GOOD, None, LIMITS, "'C:/evil.png' starts with a drive letter"),
        (GOOD, {"cat/link.png": "../../etc/passwd"}, LIMITS, "'cat/link.png' is a symbolic link"),
        (
            {"cat/bomb.png": b"\0" * 5_000_000} | GOOD,
            None,
            LIMITS,
            "'cat/bomb.png' expands more than 100 times its packed size",
        ),
        (
            {f"cat/{i}.bmp": bytes(range(256)) * 400 for i in range(12)} | GOOD,
            None,
            dataclasses.replace(LIMITS, max_unzipped_bytes=1_000_000),
            "unpacks to more than 1 MB",
        ),
        (
            {f"cat/{i}.png": b"" for i in range(25)},
            None,
            dataclasses.replace(LIMITS, max_entries=20),
            "holds 25 files and folders; this server takes up to 20",
        ),
        ({f"cat/{i}.png": _png() for i in range(5)}, None, LIMITS, "only one class folder, 'cat'"),
        (
            {f"{i}.png": _png() for i in range(6)},
            None,
            LIMITS,
            "no class folders: the zip must hold one folder per class",
        ),
        (_classes(3, 2), None, LIMITS, "at least 3 readable images, but 'dog' has 2"),
    ],
    ids=[
        "traversal",
        "traversal-inside",
        "traversal-backslash",
        "absolute-path",
        "drive-letter",
        "symlink",
        "bomb-by-ratio",
        "bytes-counted-while-unpacking",
        "too-many-entries",
        "one-class-only",
        "wrong-layout",
        "too-few-per-class",
    ],
)
def test_hostile_or_unusable_zips_are_rejected_and_nothing_is_written(
    tmp_path, entries, symlinks, limits, words
):
    root = tmp_path / "data"
    with pytest.raises(UploadError, match=words):
        import_upload(_zip(entries, symlinks), root=root, limits=limits)
    assert _files(tmp_path) == []


def test_not_a_zip_and_too_big_a_zip_are_rejected(tmp_path):
    with pytest.raises(UploadError, match="not a zip archive"):
        import_upload(_png(), root=tmp_path, limits=LIMITS)
    small = dataclasses.replace(LIMITS, max_upload_bytes=1024**2)
    with pytest.raises(UploadError, match="this server takes up to 1 MB"):
        import_upload(b"\0" * (1024**2 + 1), root=tmp_path, limits=small)
    assert _files(tmp_path) == []


def test_unreadable_files_are_skipped_and_named(tmp_path):
    whole = _png(RED, size=(40, 40))
    out = io.BytesIO()
    Image.effect_noise((30, 30), 60).save(out, format="PNG")
    noisy = out.getvalue()
    bad = {
        "cat/empty.png": b"",
        "cat/cut.png": noisy[: len(noisy) // 2],
        "cat/readme.txt": b"just text",
        "cat/huge.png": _png_header_only(100_000, 100_000),  # never decoded
        "dog/big.png": whole,  # over the cap set below
        "stray.png": _png(),
    }
    limits = dataclasses.replace(LIMITS, max_pixels=1000)
    report = import_upload(_zip(_classes() | bad), root=tmp_path, limits=limits)
    skipped = dict(report.skipped)
    assert report.counts == (3, 3)
    assert skipped == {
        "cat/empty.png": "is empty (0 bytes)",
        "cat/cut.png": "is damaged or cut short",
        "cat/readme.txt": "is not an image this app reads (PNG, JPEG, BMP, GIF, WEBP)",
        "cat/huge.png": "has so many pixels it may be a decompression bomb",
        "dog/big.png": "is 40x40 pixels, over the cap of 1,000",
        "stray.png": "is not inside a class folder",
    }


def test_pillows_decompression_bomb_warning_is_an_error(tmp_path):
    # 10,000 x 10,000 is past Pillow's warning threshold (~89 M pixels) but below its
    # error threshold: with our own cap lifted, only the warning-as-error stops it.
    assert Image.MAX_IMAGE_PIXELS < 10_000**2 < 2 * Image.MAX_IMAGE_PIXELS
    limits = dataclasses.replace(LIMITS, max_pixels=10**12)
    blob = _zip(_classes() | {"cat/wide.png": _png_header_only(10_000, 10_000)})
    report = import_upload(blob, root=tmp_path, limits=limits)
    assert dict(report.skipped) == {
        "cat/wide.png": "has so many pixels it may be a decompression bomb"
    }


def test_an_entry_that_fails_its_crc_is_skipped_as_damaged(tmp_path):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, blob in GOOD.items():
            z.writestr(name, blob)
        z.writestr("cat/bad.png", b"PAYLOAD" * 10, compress_type=zipfile.ZIP_STORED)
    blob = out.getvalue().replace(b"PAYLOADPAYLOAD", b"PAYLOADPAYLOAX", 1)
    report = import_upload(blob, root=tmp_path, limits=LIMITS)
    assert dict(report.skipped) == {"cat/bad.png": "is damaged inside the zip"}
