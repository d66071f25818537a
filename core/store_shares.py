"""Read-only share links of stored runs: one random token per run, kept in the store.

A link is `?run=<id>&view=<token>`. The token is `secrets.token_urlsafe` (128 random bits):
it says nothing about the run id, and only opens the run it was made for. Whoever has
the link may look at the run's charts and settings; nobody can change or delete it with it.
"""

from __future__ import annotations

import secrets
import sqlite3
import time

TOKEN_BYTES = 16  # 128 bits: as unguessable as the owner token
MAX_TOKEN_CHARS = 64  # a longer `view=` is not one of ours; refused before any query

SHARES_TABLE = """
CREATE TABLE IF NOT EXISTS shares (
    run_id TEXT PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
);
"""


def token_of(db: sqlite3.Connection, run_id: str) -> str:
    """The run's share token, made on first use (two pages asking at once get one token)."""
    db.execute(
        "INSERT OR IGNORE INTO shares (run_id, token, created) VALUES (?, ?, ?)",
        (run_id, secrets.token_urlsafe(TOKEN_BYTES), time.time()),
    )
    return db.execute("SELECT token FROM shares WHERE run_id = ?", (run_id,)).fetchone()[0]


def token_matches(db: sqlite3.Connection, run_id: str, token: object) -> bool:
    """Whether `token` is the share token of `run_id` (compared in constant time)."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        return False
    row = db.execute("SELECT token FROM shares WHERE run_id = ?", (run_id,)).fetchone()
    return row is not None and secrets.compare_digest(row[0].encode(), token.encode())
