"""Share links of stored runs: a random token per run, kept in the store, that opens only
its own run, read-only; gone with the run."""

import sqlite3

import pytest

from core.store import DB_NAME, RunStore, StoreError
from core.store_schema import create_v1, tables
from tests.core.test_store import new_run


def test_a_token_is_random_per_run_and_stays_the_same_for_its_run(tmp_path):
    store = RunStore(tmp_path)
    a, b = new_run(store), new_run(store)
    token_a = store.share_token(a, "ann")
    assert store.share_token(a, "ann") == token_a  # asked again: the same link
    token_b = store.share_token(b, "ann")
    assert token_a != token_b
    assert len(token_a) >= 22  # 16 random bytes, URL-safe base64
    assert a not in token_a and token_a not in a  # says nothing about the id
    # Reopened from disk, the links still work.
    assert RunStore(tmp_path).shared_run(a, token_a).id == a


def test_tokens_of_the_same_run_in_two_stores_differ(tmp_path):
    """The token is drawn at random, not derived from the id: the same run id in two
    data folders gets two different tokens."""
    one, two = RunStore(tmp_path / "one"), RunStore(tmp_path / "two")
    rid = new_run(one, run_id="samerun")
    new_run(two, run_id="samerun")
    assert one.share_token(rid, "ann") != two.share_token(rid, "ann")


def test_a_token_opens_only_its_run(tmp_path):
    store = RunStore(tmp_path)
    a, b = new_run(store), new_run(store)
    token_a = store.share_token(a, "ann")
    store.share_token(b, "ann")
    info = store.shared_run(a, token_a)
    assert (info.id, info.owner, info.name) == (a, "ann", "twin")
    assert store.shared_run(b, token_a) is None  # a's token does not open b
    assert store.shared_run(a, token_a[:-1]) is None
    assert store.shared_run(a, token_a + "x") is None
    assert store.shared_run(a, "") is None
    assert store.shared_run(a, None) is None
    assert store.shared_run(a, "x" * 10_000) is None
    assert store.shared_run("../" + a, token_a) is None
    assert store.shared_run("nosuchrun", token_a) is None


def test_a_run_never_shared_opens_with_no_token(tmp_path):
    store = RunStore(tmp_path)
    rid = new_run(store)
    assert store.shared_run(rid, "anything") is None


def test_only_the_owner_gets_a_token(tmp_path):
    store = RunStore(tmp_path)
    rid = new_run(store)
    with pytest.raises(StoreError, match="this run belongs to someone else"):
        store.share_token(rid, "bob")
    with pytest.raises(StoreError, match="this run is not stored"):
        store.share_token("gone", "ann")


def test_deleting_a_run_deletes_its_link(tmp_path):
    store = RunStore(tmp_path)
    rid = new_run(store)
    token = store.share_token(rid, "ann")
    store.delete(rid, "ann")
    assert store.shared_run(rid, token) is None
    rows = store.connect().execute("SELECT COUNT(*) FROM shares").fetchone()[0]
    assert rows == 0


def test_a_version_1_file_gets_the_shares_table(tmp_path):
    db = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    create_v1(db)
    db.close()
    store = RunStore(tmp_path)
    assert store.message == ""
    assert {"run_id", "token", "created"} <= tables(store.connect())["shares"]
    rid = new_run(store)
    assert store.shared_run(rid, store.share_token(rid, "ann")).id == rid
