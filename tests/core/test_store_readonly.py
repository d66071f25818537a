"""A data folder this server cannot write: new runs train in memory with a note that they
are not being saved, and the runs stored before are still listed, read without changing a
byte. Real permissions, not a flag: the store is opened in a process without the right to
write the folder (as root, one whose capabilities to override file modes were dropped)."""

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import TrainConfig
from core.store import DB_NAME, RunStore
from core.store_readonly import copy_stored, open_read_only
from tests.core.helpers import tiny_spec
from tests.core.test_store_kill import ROOT, Child, wait_lines

# Root writes anywhere through these capabilities; without them a file's mode holds.
NO_OVERRIDE = "--bounding-set=-dac_override,-dac_read_search,-fowner,-linux_immutable"


def without_write_rights(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    if shutil.which("setpriv") is None:
        pytest.skip("as root this needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
    return ["setpriv", NO_OVERRIDE, *cmd]


def contents(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def set_modes(folder: Path, files: int, dirs: int) -> None:
    for p in [folder, *folder.rglob("*")]:
        p.chmod(dirs if p.is_dir() else files)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("left", "read_only"),
    [("closed", "folder"), ("killed", "folder"), ("closed", "database")],
)
def test_a_read_only_data_folder_lists_the_stored_runs_and_trains_new_ones_in_memory(
    tmp_path, left, read_only
):
    folder = tmp_path / "data"
    child = Child("train", folder)
    wait_lines(child, "flushed", 14)
    child.kill()  # "killed": its WAL and shared-memory files stay behind
    flushed = child.last("flushed")
    if left == "closed":
        RunStore(folder).close()  # the last connection folds the WAL into the file
    assert (folder / f"{DB_NAME}-wal").exists() == (left == "killed")
    before = contents(folder)
    set_modes(folder, 0o444, 0o555 if read_only == "folder" else 0o755)
    try:
        child_cmd = [sys.executable, "-m", "tests.core.store_child", "readonly", str(folder)]
        out = subprocess.run(
            without_write_rights(child_cmd),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env=os.environ | {"PYTHONDONTWRITEBYTECODE": "1"},
        )
    finally:
        set_modes(folder, 0o644, 0o755)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["saving"] is False and seen["flushed"] is False
    assert seen["message"] == (
        f"not being saved: the data folder {folder} cannot be written; make it writable; "
        "the 1 run stored before is listed, and changes to it are not saved either"
    )
    assert seen["writer_message"].startswith("not being saved: ")
    assert seen["stored"] == ["killed"]
    steps = seen["killed_steps"]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= flushed
    assert seen["checkpoint_step"] % 3 == 0 and seen["checkpoint_step"] <= len(steps)
    assert seen["listed"] == ["new", "killed"]  # the new run, in memory, beside the old
    assert seen["new_steps"] == [1, 2, 3]
    if read_only == "folder":
        assert contents(folder) == before  # not one byte written, no file added
    else:  # SQLite may add an empty WAL beside a read-only file; the file is untouched
        assert contents(folder)[DB_NAME] == before[DB_NAME]


def test_copy_stored_reads_commits_still_in_the_wal_and_refuses_a_foreign_file(tmp_path):
    store = RunStore(tmp_path)  # left open: its last commits are in runs.sqlite-wal
    store.create_run("ann", "one", arms={"a": tiny_spec()}, config=TrainConfig())
    store.create_run("bob", "two", arms={"a": tiny_spec()}, config=TrainConfig())
    assert (tmp_path / f"{DB_NAME}-wal").stat().st_size > 0
    memory = sqlite3.connect(":memory:")
    assert copy_stored(tmp_path / DB_NAME, memory) == (2, None)
    names = sorted(r[0] for r in memory.execute("SELECT name FROM runs"))
    assert names == ["one", "two"]
    db = open_read_only(tmp_path / DB_NAME)
    with pytest.raises(sqlite3.OperationalError, match="attempt to write a readonly database"):
        db.execute("DELETE FROM runs")
    db.close()

    foreign = tmp_path / "other.sqlite"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    assert copy_stored(foreign, sqlite3.connect(":memory:"))[0] == 0
    assert copy_stored(foreign, sqlite3.connect(":memory:"))[1]
    assert copy_stored(tmp_path / "missing.sqlite", sqlite3.connect(":memory:")) == (0, None)
