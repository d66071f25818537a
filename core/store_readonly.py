"""The runs already stored, when the data folder cannot be written (read-only folder or
file, a read-only mount, a disk that refuses): read without changing a byte and copied
into the in-memory store, so they stay listed, comparable and explainable while new runs
train in memory and the page says that nothing is being saved.

Why a copy and not the file itself: every query of the store then reads one database,
and runs started now (in memory) and runs stored before list together; the copy costs
the size of the file in memory, once, and only in this unusual state.
"""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
from pathlib import Path

from core.store_schema import ensure_current, problem

# `mode=ro` still needs the WAL's shared-memory file (it creates it when it is missing);
# `immutable=1` needs nothing but promises SQLite that nobody writes the file meanwhile,
# which holds here: this server could not, and only one server uses a data folder.
READ_ONLY_QUERIES = ("mode=ro", "immutable=1")


def probe_writable(db: sqlite3.Connection, folder: Path) -> None:
    """Raise the error a write would meet, now rather than at the first step: SQLite opens
    a file it may not write read-only without a word, and a folder's mode says nothing
    about a read-only mount."""
    try:  # changes no row, but opens a write transaction: refused on a read-only file
        db.execute("UPDATE runs SET id = id WHERE 0")
    except sqlite3.OperationalError as e:
        if "locked" not in str(e):  # locked: another process is writing it, so it can be
            raise
    with tempfile.TemporaryFile(dir=folder):  # checkpoints go there
        pass


def open_read_only(path: Path) -> sqlite3.Connection:
    """The database at `path`, opened so that nothing is written (no journal, no -shm).

    Raises:
        sqlite3.Error: neither way could read it.
    """
    error: sqlite3.Error | None = None
    for query in READ_ONLY_QUERIES:
        db = sqlite3.connect(f"{path.absolute().as_uri()}?{query}", uri=True)
        try:
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.Error as e:
            db.close()
            error = e
    assert error is not None
    raise error


def copy_stored(path: Path, into: sqlite3.Connection) -> tuple[int, str | None]:
    """Copy the run database at `path` (read-only) into the connection `into` (an
    in-memory database), migrated to the current schema there; the file is not touched.

    Returns:
        (number of runs copied, why nothing could be copied or None).
    """
    if not path.is_file():
        return 0, None
    try:
        with contextlib.closing(open_read_only(path)) as src:
            why = problem(src)
            if why:
                return 0, why
            src.backup(into)
        into.execute("PRAGMA journal_mode = MEMORY")  # the copied header says WAL
        ensure_current(into)
        return into.execute("SELECT COUNT(*) FROM runs").fetchone()[0], None
    except sqlite3.Error as e:
        return 0, f"it cannot be read: {e}"


def stored_note(count: int, why: str | None) -> str:
    """What the store's message adds about the runs stored before."""
    if why:
        return f"; the runs stored before cannot be shown ({why})"
    if count == 1:
        return "; the 1 run stored before is listed, and changes to it are not saved either"
    if count:
        return (
            f"; the {count} runs stored before are listed, and changes to them are not saved either"
        )
    return ""
