"""Kept uploads (issue 10, "uploads fill the disk"): each browser's share and the
server's total are capped, a browser's oldest unused zip makes room, and `prune_uploads`
keeps only what runs still use. Real zips in a temporary data directory."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from core.data import DataError, DataRequest, clear_cache, load
from core.limits import DataLimits
from core.uploads import UploadError, import_upload, prune_uploads, uploads_folder
from tests.core.test_data_uploads import LIMITS, _classes, _zip

MB = 1024**2
# Three different zips, smallest first (more images, more bytes).
A, B, C = (_zip(_classes(3, n)) for n in (3, 5, 7))
DA, DB, DC = (hashlib.sha256(z).hexdigest() for z in (A, B, C))


@pytest.fixture(autouse=True)
def _data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_DATA", str(tmp_path))
    clear_cache()
    yield
    clear_cache()


def _kept() -> set[str]:
    return {p.stem for p in uploads_folder().glob("*.zip")}


def _index() -> dict:
    return json.loads((uploads_folder() / "index.json").read_text())["owners"]


def test_three_zips_differ_in_size_as_the_tests_below_assume():
    assert len(A) < len(B) < len(C)


def test_the_owner_is_recorded_as_a_hash_and_no_temporary_file_is_left():
    import_upload(A, owner="browser-token-1", limits=LIMITS)
    import_upload(A, owner="browser-token-2", limits=LIMITS)
    owners = _index()
    assert list(owners) == [DA] and len(owners[DA]) == 2
    text = (uploads_folder() / "index.json").read_text()
    assert "browser-token" not in text  # the token lets a browser see its runs: not on disk
    assert sorted(p.name for p in uploads_folder().iterdir()) == [f"{DA}.zip", "index.json"]


def test_a_browsers_oldest_zip_makes_room_for_a_new_one():
    limits = dataclasses.replace(LIMITS, max_kept_per_owner=len(B) + len(C))
    for blob in (A, B):
        import_upload(blob, owner="ann", limits=limits)
    assert _kept() == {DA, DB}
    import_upload(C, owner="ann", limits=limits)  # A + B + C is over: A, the oldest, goes
    assert _kept() == {DB, DC} and set(_index()) == {DB, DC}
    with pytest.raises(DataError, match="upload the zip again"):
        load(DataRequest(name="upload", upload=DA, size=8), limits=limits)
    assert load(DataRequest(name="upload", upload=DB, size=8), limits=limits).num_classes == 2


def test_a_zip_a_run_still_uses_is_kept_and_the_next_oldest_goes():
    limits = dataclasses.replace(LIMITS, max_kept_per_owner=len(A) + len(C))
    for blob in (A, B):
        import_upload(blob, owner="ann", limits=limits)
    import_upload(C, owner="ann", keep={DA}, limits=limits)
    assert _kept() == {DA, DC}


def test_a_browser_over_its_share_is_told_and_nothing_is_let_go():
    limits = dataclasses.replace(LIMITS, max_kept_per_owner=len(A) + len(B))
    for blob in (A, B):
        import_upload(blob, owner="ann", limits=limits)
    with pytest.raises(UploadError) as caught:
        import_upload(C, owner="ann", keep={DA, DB}, limits=limits)
    share = f"{(len(A) + len(B)) / 1024:.0f} KB"
    assert str(caught.value) == (
        f"this browser keeps {share} of uploaded zips that its runs still use, and this "
        f"one adds {len(C) / 1024:.0f} KB: over the {share} each browser may keep; delete "
        "runs you no longer need on the Runs page, or upload a smaller zip"
    )
    assert _kept() == {DA, DB}
    import_upload(A, owner="ann", keep={DA, DB}, limits=limits)  # already kept: no new bytes


def test_a_zip_two_browsers_own_stays_until_both_let_it_go():
    limits = dataclasses.replace(LIMITS, max_kept_per_owner=len(B) + len(C))
    import_upload(A, owner="ann", limits=limits)
    import_upload(A, owner="bob", limits=limits)
    import_upload(B, owner="ann", limits=limits)
    import_upload(C, owner="ann", limits=limits)  # ann lets A go; bob still has it
    assert _kept() == {DA, DB, DC}
    assert len(_index()[DA]) == 1
    import_upload(B, owner="bob", limits=limits)
    import_upload(C, owner="bob", limits=limits)  # now nobody owns A
    assert _kept() == {DB, DC}


def test_the_servers_total_is_capped_for_every_browser():
    limits = dataclasses.replace(LIMITS, max_kept_bytes=len(A) + len(B))
    import_upload(A, owner="ann", limits=limits)
    import_upload(B, owner="bob", limits=limits)
    with pytest.raises(UploadError) as caught:
        import_upload(C, owner="cem", limits=limits)
    total = (len(A) + len(B) + len(C)) / 1024
    assert str(caught.value) == (
        f"this server's space for uploaded zips is full: this zip would bring it to "
        f"{total:.0f} KB, over the {(len(A) + len(B)) / 1024:.0f} KB it may keep; ask whoever "
        "runs the server to delete old runs, or upload a smaller zip"
    )
    assert _kept() == {DA, DB}


def test_prune_keeps_only_what_runs_use_and_forgets_the_rest():
    for blob, owner in ((A, "ann"), (B, "bob"), (C, None)):
        import_upload(blob, owner=owner, limits=LIMITS)
    (uploads_folder() / "leftover.part").write_bytes(b"half a zip")
    assert prune_uploads({DB, "f" * 64}) == sorted([DA, DC])
    assert sorted(p.name for p in uploads_folder().iterdir()) == [f"{DB}.zip", "index.json"]
    assert set(_index()) == {DB}
    assert prune_uploads(set()) == [DB] and _kept() == set()


def test_a_damaged_index_forgets_owners_but_still_counts_every_zip():
    import_upload(A, owner="ann", limits=LIMITS)
    (uploads_folder() / "index.json").write_text("{not json")
    limits = dataclasses.replace(LIMITS, max_kept_bytes=len(A) + len(B) - 1)
    with pytest.raises(UploadError, match="space for uploaded zips is full"):
        import_upload(B, owner="ann", limits=limits)
    import_upload(B, owner="ann", limits=LIMITS)
    assert set(_index()) == {DB}  # A is kept but owned by nobody: prune_uploads removes it
    assert _kept() == {DA, DB}


def test_quotas_come_from_the_environment_in_mb(monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_UPLOADS_PER_BROWSER_MB", "7")
    monkeypatch.setenv("RESNET_EXPLORER_UPLOADS_TOTAL_MB", "900")
    limits = DataLimits()
    assert (limits.max_kept_per_owner, limits.max_kept_bytes) == (7 * MB, 900 * MB)
    monkeypatch.setenv("RESNET_EXPLORER_UPLOADS_PER_BROWSER_MB", "lots")
    monkeypatch.delenv("RESNET_EXPLORER_UPLOADS_TOTAL_MB")
    limits = DataLimits()
    assert (limits.max_kept_per_owner, limits.max_kept_bytes) == (300 * MB, 5_000 * MB)
