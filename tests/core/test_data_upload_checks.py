"""Checks on a whole zip (issue 10: bounded bytes, pixels and time) and on what the
decoder sees (issue 16: 16-bit PNGs and password-protected zips), with zips crafted here
byte by byte where Python's zipfile cannot write them."""

from __future__ import annotations

import dataclasses
import io
import struct
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

from core.data import DataRequest, clear_cache, load
from core.uploads import UploadError, import_upload, read_zip
from tests.core.test_data_uploads import LIMITS, _classes, _files, _png, _zip

EOCD = struct.Struct("<4s4H2LH")  # end of central directory record, 22 bytes


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def _central_records(blob: bytes) -> tuple[int, list[bytes]]:
    """Where the central directory starts, and its records as bytes (APPNOTE 4.3.12)."""
    sig, _, _, _, count, _, start, _ = EOCD.unpack(blob[-EOCD.size :])
    assert sig == b"PK\x05\x06", "no archive comment in these zips: the record ends the file"
    records, at = [], start
    for _ in range(count):
        assert blob[at : at + 4] == b"PK\x01\x02"
        name, extra, comment = struct.unpack("<3H", blob[at + 28 : at + 34])
        size = 46 + name + extra + comment
        records.append(blob[at : at + size])
        at += size
    return start, records


def _with_records(blob: bytes, records: list[bytes]) -> bytes:
    """The zip's local entries, then `records` as its central directory."""
    start, _ = _central_records(blob)
    directory = b"".join(records)
    n = len(records)
    return blob[:start] + directory + EOCD.pack(b"PK\x05\x06", 0, 0, n, n, len(directory), start, 0)


def test_entries_that_share_packed_bytes_are_refused_before_unpacking(tmp_path):
    # One real entry, then 2,000 more directory records pointing at its local header:
    # each would unpack (and decode) the same bytes again, while the zip stays small.
    photo = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(photo).save(out, format="PNG")
    blob = _zip(_classes() | {"cat/photo.png": out.getvalue()})
    _, records = _central_records(blob)
    photo_record = next(r for r in records if b"cat/photo.png" in r)
    bomb = _with_records(blob, records + [photo_record] * 2_000)
    assert len(zipfile.ZipFile(io.BytesIO(bomb)).infolist()) == 2_007
    with pytest.raises(UploadError) as caught:
        import_upload(bomb, root=tmp_path, limits=LIMITS)
    assert str(caught.value) == (
        "the zip entry 'cat/photo.png' overlaps 'cat/photo.png': they share packed bytes, as "
        "zip bombs' entries do; make the zip again with a standard tool, zipping the class "
        "folders themselves"
    )
    assert _files(tmp_path) == []


def test_the_pixels_of_all_images_together_are_capped(tmp_path):
    entries = {f"{c}/{i}.png": _png(size=(40, 40)) for c in ("cat", "dog") for i in range(10)}
    limits = dataclasses.replace(LIMITS, max_total_pixels=20 * 40 * 40 - 1)
    with pytest.raises(UploadError) as caught:
        import_upload(_zip(entries), root=tmp_path, limits=limits)
    assert str(caught.value) == (
        "the images hold more than 31,999 pixels in all (counted while decoding), more than "
        "this server reads for one upload; upload fewer images, or shrink them first "
        "(training uses at most 128 px a side)"
    )
    assert _files(tmp_path) == []
    exact = dataclasses.replace(LIMITS, max_total_pixels=20 * 40 * 40)
    assert import_upload(_zip(entries), root=tmp_path, limits=exact).counts == (10, 10)


def test_jpegs_count_the_pixels_decoded_at_a_reduced_scale(tmp_path):
    # An 800x800 JPEG is decoded at 1/4 scale (200x200): the largest reduction that
    # still gives the largest training side, 128 px. 1/8 would give 100 px.
    out = io.BytesIO()
    Image.new("RGB", (800, 800), (200, 30, 30)).save(out, format="JPEG")
    entries = {f"{c}/{i}.jpg": out.getvalue() for c in ("cat", "dog") for i in range(3)}
    fits = dataclasses.replace(LIMITS, max_total_pixels=6 * 200 * 200)
    assert import_upload(_zip(entries), root=tmp_path, limits=fits).counts == (3, 3)
    short = dataclasses.replace(LIMITS, max_total_pixels=6 * 200 * 200 - 1)
    with pytest.raises(UploadError, match="more than 239,999 pixels in all"):
        import_upload(_zip(entries), root=tmp_path / "other", limits=short)


def test_a_check_stops_when_its_time_is_up_but_a_kept_zip_loads_untimed(tmp_path):
    blob = _zip(_classes())
    no_time = dataclasses.replace(LIMITS, max_check_seconds=0)
    with pytest.raises(UploadError) as caught:
        import_upload(blob, root=tmp_path, limits=no_time)
    assert str(caught.value) == (
        "checking the zip ran out of its 0 s, the most this server spends on one upload "
        "(stopped after 0 of 6 files); upload fewer images, or shrink them first"
    )
    assert _files(tmp_path) == []
    digest = import_upload(blob, root=tmp_path, limits=LIMITS).digest
    d = load(DataRequest(name="upload", upload=digest, size=8), root=tmp_path, limits=no_time)
    assert d.num_classes == 2 and len(d.y_train) + len(d.y_val) == 6


def _png16(pixels: np.ndarray) -> bytes:
    """A 16-bit PNG written by hand: grey (H, W) or RGB (H, W, 3) big-endian samples."""
    colour = 2 if pixels.ndim == 3 else 0
    h, w = pixels.shape[:2]
    rows = pixels.astype(">u2").reshape(h, -1)
    raw = b"".join(b"\0" + row.tobytes() for row in rows)  # filter type 0 on every row

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def test_16_bit_pngs_keep_their_values_scaled_to_8_bits():
    grey = {}
    for i in range(3):  # written by Pillow itself, mode I;16: values 256 * (50 + i) + 200
        out = io.BytesIO()
        Image.fromarray(np.full((10, 12), 256 * (50 + i) + 200, dtype=np.uint16)).save(
            out, format="PNG"
        )
        grey[f"cat/{i}.png"] = out.getvalue()
    mid = np.full((10, 12), 32768, dtype=np.uint16)
    grey["cat/mid.png"] = _png16(mid)
    colour = np.stack([np.full((10, 12), v) for v in (0x1234, 0x8000, 0xFFFF)], axis=-1)
    entries = grey | {f"dog/{i}.png": _png16(colour) for i in range(3)}
    x, y, classes, skipped = read_zip(_zip(entries), size=8, limits=LIMITS)
    assert classes == ("cat", "dog") and skipped == ()
    assert x.shape == (7, 3, 8, 8)
    cats = x[y == 0][:, :, 0, 0].tolist()  # entries in zip order: 0, 1, 2, mid
    assert cats == [[50] * 3, [51] * 3, [52] * 3, [128] * 3]
    assert (x[y == 0] == x[y == 0][:, :, :1, :1]).all(), "each image stays flat"
    assert x[y == 1][:, :, 3, 3].tolist() == [[0x12, 0x80, 0xFF]] * 3


def _encrypted(blob: bytes) -> bytes:
    """`blob` with the 'encrypted' flag (bit 0) set in every local and central header,
    as a password-protecting zip tool writes them (the data itself stays readable)."""
    start, records = _central_records(blob)
    local = bytearray(blob[:start])
    flagged = []
    for record in records:
        offset = struct.unpack("<L", record[42:46])[0]
        assert local[offset : offset + 4] == b"PK\x03\x04"
        local[offset + 6] |= 1  # local header: general purpose flags at +6
        record = bytearray(record)
        record[8] |= 1  # central record: general purpose flags at +8
        flagged.append(bytes(record))
    return _with_records(bytes(local) + blob[start:], flagged)


def test_a_password_protected_zip_is_named_so(tmp_path):
    blob = _encrypted(_zip(_classes()))
    assert all(i.flag_bits & 1 for i in zipfile.ZipFile(io.BytesIO(blob)).infolist())
    with pytest.raises(UploadError) as caught:
        import_upload(blob, root=tmp_path, limits=LIMITS)
    assert str(caught.value) == "the zip is password-protected; make one without a password"
    assert _files(tmp_path) == []
