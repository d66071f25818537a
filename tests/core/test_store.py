"""The run store: schema and migration, batched writes, readers in another process,
retention caps, and the faults (foreign file, a folder in the way, a full disk)."""

import importlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import TrainConfig
from core.presets import PRESETS
from core.store import DB_NAME, RunStore, StoreError, StoreFullError
from core.store_records import MAX_BYTES_ENV, MAX_RUNS_ENV
from core.store_schema import CURRENT, create_v1, tables
from core.store_writer import RunWriter
from core.telemetry import EvalRecord, Event, StepRecord
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
SPEC = PRESETS["resnet8_narrow"].spec(input_shape=(3, 8, 8), num_classes=2)
CFG = TrainConfig(steps=10, device="cpu")


def record(step: int, layers: int = 3) -> StepRecord:
    return StepRecord(
        step=step,
        epoch=step / 10,
        loss=1 / step,
        accuracy=0.5 + step / 1000,
        lr=0.1,
        grad_norms=tuple(1e-30 * (i + 1) * step for i in range(layers)),
        weight_norms=tuple(float(i + step) for i in range(layers)),
        update_ratios=tuple(1 / (i + step + 7) for i in range(layers)),
        images_per_s=1234.5,
        seconds=step * 0.01,
    )


def new_run(store: RunStore, owner: str = "ann", **kw) -> str:
    arms = {"plain": SPEC.with_skips(False), "residual": SPEC}
    return store.create_run(owner, "twin", arms=arms, config=CFG, data={"name": "shapes"}, **kw)


def test_a_run_round_trips_through_writer_and_snapshot(tmp_path):
    store = RunStore(tmp_path)
    rid = new_run(store, device="CPU (2 cores)", total_steps=10)
    writer = RunWriter(store, rid, every_s=60, every_n=10_000)
    writer.arm("residual", layers=("stem", "blocks.0", "head"), param_names=("a", "b"))
    steps = [record(s) for s in range(1, 6)]
    for r in steps:
        writer.step("residual", r)
    writer.eval("residual", EvalRecord(step=5, epoch=0.5, loss=0.7, accuracy=0.625))
    writer.event("residual", Event(step=3, kind="skip", detail="skip off: all blocks"))
    writer.arm("residual", spec=SPEC.with_skips(False))
    assert store.snapshot(rid, "residual").steps == ()  # nothing before a flush
    writer.close()

    snap = store.snapshot(rid, "residual")
    assert snap.steps == tuple(steps)  # float64 blobs: every bit comes back
    assert snap.layers == ("stem", "blocks.0", "head") and snap.param_names == ("a", "b")
    assert snap.evals == (EvalRecord(step=5, epoch=0.5, loss=0.7, accuracy=0.625),)
    assert snap.events == (Event(step=3, kind="skip", detail="skip off: all blocks"),)
    assert store.snapshot(rid, "residual", after=3).steps == tuple(steps[3:])
    assert store.specs(rid)["residual"] == (SPEC, SPEC.with_skips(False))
    info = store.run(rid)
    assert (info.arms, info.step, info.device, info.best_val_accuracy) == (
        ("plain", "residual"),
        5,
        "CPU (2 cores)",
        0.625,
    )
    assert info.config == CFG and info.data == {"name": "shapes"} and info.bytes > 0


def test_writer_flushes_every_n_records_without_a_close(tmp_path):
    store = RunStore(tmp_path)
    rid = new_run(store)
    writer = RunWriter(store, rid, every_s=3600, every_n=4)
    for s in range(1, 5):
        writer.step("plain", record(s))
    wait_for(lambda: len(store.snapshot(rid, "plain").steps) == 4, what="a flush of 4 steps")
    writer.close()


def test_storing_run_log_hands_every_record_to_the_writer(tmp_path):
    store = RunStore(tmp_path)
    rid = new_run(store)
    writer = RunWriter(store, rid, every_s=3600, every_n=10_000)
    log = writer.log("plain", ("stem", "blocks.0", "head"), ("a", "b"))
    for s in (1, 2):
        log.append_step(record(s))
    log.append_event(Event(step=2, kind="lr", detail="lr = 0.01"))
    writer.close()
    stored, live = store.snapshot(rid, "plain"), log.snapshot()
    assert (stored.steps, stored.events, stored.layers) == (live.steps, live.events, live.layers)


def test_list_filter_finish_interrupt_and_delete(tmp_path):
    store = RunStore(tmp_path)
    a, b = new_run(store), new_run(store)
    new_run(store, owner="bob")
    writer = RunWriter(store, a, every_s=3600)
    for s in (1, 2, 3):
        writer.step("plain", record(s))
    writer.checkpoint("plain", __import__("torch").nn.Linear(2, 2), step=3)
    writer.close()
    store.finish(b, "finished", results={"val_accuracy": 0.9})
    assert [r.id for r in store.list_runs("ann")] == [b, a]  # newest first
    assert [r.id for r in store.list_runs("ann", status="finished")] == [b]
    assert store.run(b).results == {"val_accuracy": 0.9} and store.run(b).ended is not None

    assert store.interrupt_active(owner="ann") == [a]
    assert (store.run(a).status, store.run(a).message) == ("interrupted", "interrupted at step 3")

    assert store.checkpoint_path(a, "plain").is_file()
    with pytest.raises(StoreError, match="belongs to someone else"):
        store.delete(a, "bob")
    store.delete(a, "ann")
    assert not store.run_dir(a).exists()
    assert store.snapshot(a, "plain").steps == ()
    with pytest.raises(StoreError, match=f"run {a}: this run is not stored"):
        store.run(a)


def test_a_reader_in_another_process_sees_flushed_steps_while_the_writer_holds_on(tmp_path):
    store = RunStore(tmp_path)
    rid = new_run(store)
    writer = RunWriter(store, rid, every_s=3600)
    for s in range(1, 8):
        writer.step("plain", record(s))
    writer.flush()
    db = store.connect()
    db.execute("BEGIN IMMEDIATE")  # a writer mid-transaction: WAL readers are not blocked
    code = (
        "import sys; from core.store import RunStore; "
        f"print(len(RunStore(sys.argv[1]).snapshot({rid!r}, 'plain').steps))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, text=True
    )
    db.execute("ROLLBACK")
    writer.close()
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "7"
    assert store.connect().execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_version_1_file_is_migrated_and_its_rows_survive(tmp_path):
    db = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    create_v1(db)
    db.execute(
        "INSERT INTO runs VALUES ('old1', 'ann', 'first run', 'finished', 1.0, 2.0, ?, '')",
        (CFG.to_json(),),
    )
    db.executemany("INSERT INTO steps VALUES ('old1', ?, ?, ?)", [(1, 2.0, 0.5), (2, 1.5, 0.75)])
    db.close()

    store = RunStore(tmp_path)
    assert store.message == ""
    assert store.connect().execute("PRAGMA user_version").fetchone()[0] == CURRENT == 2
    info = store.run("old1")
    assert (info.owner, info.name, info.status, info.arms, info.step) == (
        "ann",
        "first run",
        "finished",
        ("main",),
        2,
    )
    steps = store.snapshot("old1", "main").steps
    assert [(r.step, r.loss, r.accuracy) for r in steps] == [(1, 2.0, 0.5), (2, 1.5, 0.75)]
    assert "evals" in tables(store.connect())
    new_run(store)  # and the migrated file takes new runs


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"this is not a database, just text\n" * 100, "not an SQLite database"),
        ("foreign", "another program"),
    ],
)
def test_a_foreign_or_broken_database_is_moved_aside(tmp_path, content, why):
    path = tmp_path / DB_NAME
    if content == "foreign":
        other = sqlite3.connect(path)
        other.execute("CREATE TABLE invoices (id INTEGER, total REAL)")
        other.commit()
        other.close()
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    store = RunStore(tmp_path)
    assert store.saving
    assert why in store.message and "moved aside" in store.message
    aside = [p for p in tmp_path.iterdir() if p.name.startswith(f"{DB_NAME}.broken-")]
    assert len(aside) == 1 and aside[0].read_bytes() == before
    assert new_run(store) in [r.id for r in store.list_runs("ann")]


def test_a_folder_where_the_database_should_be_keeps_runs_in_memory(tmp_path):
    (tmp_path / DB_NAME).mkdir()
    store = RunStore(tmp_path)
    assert not store.saving
    assert store.message.startswith("not being saved: ")
    assert "is a folder, not a file" in store.message
    rid = new_run(store)
    writer = RunWriter(store, rid, every_s=3600)
    writer.step("plain", record(1))
    writer.checkpoint("plain", __import__("torch").nn.Linear(2, 2), step=1)
    assert writer.close() is False
    assert writer.message.startswith("not being saved: ")
    assert len(store.snapshot(rid, "plain").steps) == 1  # kept in memory, readable
    store.close()
    assert store.run(rid).id == rid  # closing this thread's connection keeps the memory


# A read-only data folder: tests/core/test_store_readonly.py (as root too).


def test_a_full_disk_keeps_records_in_memory_then_saves_them_when_space_returns(tmp_path):
    store = RunStore(tmp_path, max_bytes=64 * 1024)  # SQLite's own "database or disk is full"
    rid = new_run(store)
    writer = RunWriter(store, rid, every_s=3600, every_n=10**6)
    writer.arm("plain", layers=[f"l{i}" for i in range(2000)])
    for s in range(1, 40):
        writer.step("plain", record(s, layers=2000))  # 48 kB of norms a step
    assert writer.flush() is False
    assert writer.message == "not being saved: the disk is full; free some space"
    assert store.snapshot(rid, "plain").steps == ()  # the failed batch left nothing half-done
    store.max_bytes = None
    store.close()  # a new connection without the cap: space came back
    assert writer.flush() is True and writer.message == ""
    assert [r.step for r in store.snapshot(rid, "plain").steps] == list(range(1, 40))
    writer.close()


def test_a_worker_that_cannot_save_says_so_on_the_page(tmp_path):
    """The worker's live report carries its writer's message into the page's JobInfo (the
    store, which the full disk refuses, cannot carry it)."""
    from core.worker_slots import job_info

    store = RunStore(tmp_path)
    rid = new_run(store)
    row = store.run(rid)
    assert job_info(store, row, {}, None).not_saved == ""
    told = "not being saved: the disk is full; free some space"
    info = job_info(store, row, {"not_saved": told}, None)
    assert info.not_saved == told and info.message == row.message


def test_caps_on_runs_and_bytes_per_owner_are_read_from_the_environment(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    monkeypatch.setenv(MAX_RUNS_ENV, "2")
    new_run(store)
    new_run(store)
    new_run(store, owner="bob")  # another person's runs do not count
    with pytest.raises(StoreFullError) as e:
        new_run(store)
    assert str(e.value) == (
        "you have 2 stored runs, the most this server keeps for one person; "
        "delete old runs on the Runs page, then start this one again"
    )
    monkeypatch.setenv(MAX_RUNS_ENV, "100")
    monkeypatch.setenv(MAX_BYTES_ENV, "1000")
    rid = store.list_runs("ann")[0].id
    writer = RunWriter(store, rid)
    writer.step("plain", record(1, layers=200))
    writer.close()
    with pytest.raises(StoreFullError, match="your stored runs take 0 MB, the most"):
        new_run(store)
    store.delete(rid, "ann")
    new_run(store)  # deleting made room


def test_an_arm_name_that_cannot_name_a_file_is_refused(tmp_path):
    with pytest.raises(StoreError, match="cannot name a file"):
        RunStore(tmp_path).create_run("ann", "x", arms={"../up": SPEC}, config=CFG)


def test_the_store_overhead_bench_runs(capsys):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        ratio = importlib.import_module("store_overhead").main(["--steps", "2", "--rounds", "1"])
    finally:
        sys.path.remove(str(ROOT / "bench"))
    assert ratio > 0
    out = capsys.readouterr().out
    assert "ratio stored/memory" in out and "(saving: True)" in out


def test_uploads_in_use_are_the_zips_any_stored_run_trained_on(tmp_path):
    store = RunStore(tmp_path)
    digest = "ab" * 32
    upload = {"name": "upload", "request": {"name": "upload", "upload": digest}}
    store.create_run("ann", "mine", arms={"a": SPEC}, config=CFG, data=upload)
    store.create_run("bob", "theirs", arms={"a": SPEC}, config=CFG, data={"name": "shapes"})
    assert store.uploads_in_use() == {digest}  # every owner's: a zip may be shared
    store.delete(store.list_runs("ann")[0].id, "ann")
    assert store.uploads_in_use() == set()
