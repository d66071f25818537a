"""Core's messages that outlive the `say()` that made them (a run's message in SQLite, an
event's detail in the telemetry) are translated when shown: `tr` matches the stored English
against the catalogue's templates and fills the German one with the same values."""

import io
import sqlite3
import zipfile

import pytest
import torch

from app import i18n, markers
from core.jobs_api import release_message
from core.plan import check_memory
from core.presets import PRESETS
from core.run import failure_message
from core.run_import import RunImportError, import_run
from core.scheduling import Policy, quota_message, quota_used
from core.spec import ConvSpec, NetSpec, SpecError
from core.store import DB_NAME, RunStore
from core.store_records import quota_refusal
from core.training import DivergedError, describe_device
from core.uploads import UploadError, read_zip
from core.words import say
from core.worker_slots import INTERRUPTED_AT, STOPPED_AT, exit_reason
from tests.core.test_data_uploads import LIMITS, _classes, _png, _zip


@pytest.fixture
def german():
    token = i18n._language.set("de")
    yield
    i18n._language.reset(token)


def _stored(text: str) -> str:
    """`text` after a round trip through SQLite: a plain str, its template gone."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE runs (message TEXT)")
    db.execute("INSERT INTO runs VALUES (?)", (text,))
    (back,) = db.execute("SELECT message FROM runs").fetchone()
    assert type(back) is str and back == text
    return back


def test_a_stored_interrupted_message_reads_in_german_with_its_reason(german):
    said = say(INTERRUPTED_AT, step=1234, reason=say("the server stopped while it trained"))
    assert str(said) == (
        "interrupted at step 1234: the server stopped while it trained; "
        "Resume continues from its last checkpoint"
    )
    assert i18n.tr(_stored(said)) == (
        "bei Schritt 1234 unterbrochen: der Server wurde während des Trainings beendet; "
        "„Fortsetzen“ macht beim letzten Checkpoint weiter"
    )


def test_a_nested_reason_with_its_own_values_is_translated_too(german):
    said = say(STOPPED_AT, step=7, reason=exit_reason(3))
    assert i18n.tr(_stored(said)) == (
        "der Lauf endete bei Schritt 7: sein Trainingsprozess endete unerwartet (Code 3); "
        "die Einzelheiten stehen im Server-Log; starten Sie ihn erneut"
    )


def test_the_release_message_keeps_its_span_and_writes_german_numbers(german):
    assert i18n.tr(_stored(release_message(90))).startswith("länger als 1,5 Minuten pausiert")
    assert i18n.tr(_stored(release_message(30))).startswith("länger als 30 Sekunden pausiert")


def test_fixed_messages_and_event_details(german):
    assert i18n.tr(_stored(say("cancelled before it started"))) == "abgebrochen, bevor er begann"
    assert i18n.tr(_stored(say("lr = {lr:g}", lr=0.001))) == "Lernrate = 0,001"
    skip = say("skip off: {where}", where=say("block {block}", block=3))
    assert markers._short(_stored(skip)) == "Skip-Verbindung aus: Block 3"


def test_the_device_line(german):
    cpu = describe_device(torch.device("cpu"))
    assert i18n.tr(_stored(cpu)).startswith("CPU (") and i18n.tr(cpu).endswith(" Kerne)")


def test_english_and_unknown_text_stay_as_they_are(german):
    assert i18n.tr("NVIDIA H200") == "NVIDIA H200"
    assert i18n.tr("a message no template makes") == "a message no template makes"
    token = i18n._language.set("en")
    try:
        said = say(INTERRUPTED_AT, step=5, reason="why")
        assert i18n.tr(_stored(said)) == str(said)
    finally:
        i18n._language.reset(token)


def test_a_template_reads_its_own_text_back():
    pattern = i18n._pattern("{name} moved from {a} to {b}; {name} again")
    match = pattern.fullmatch("run 1 moved from x to y; run 1 again")
    assert match.groupdict() == {"name": "run 1", "a": "x", "b": "y"}
    assert i18n._pattern("{a}: {b}") is None  # too few words to tell it from any text


# --- the plan's limits, raised as SpecError with say() parts ----------------------------


def _convs(channels: int, count: int, side: int) -> NetSpec:
    blocks = tuple(ConvSpec(out_channels=channels) for _ in range(count))
    return NetSpec(input_shape=(3, side, side), num_classes=10, blocks=blocks)


def test_the_compute_limit_reads_in_german_and_english_is_unchanged(german):
    with pytest.raises(SpecError) as info:
        _convs(64, 500, 512).validate()
    assert str(info.value) == (
        "the network: it needs 4.8e12 mult-adds per image, 48x the limit of 1e11; use fewer "
        "or narrower blocks, downsample earlier, or use smaller images"
    )
    assert i18n.tr(info.value) == (
        "das Netz: es braucht 4.8e12 Multiplikationen mit Addition pro Bild, 48-mal so viel "
        "wie das Limit von 1e11; nehmen Sie weniger oder schmalere Blöcke, verkleinern Sie "
        "früher (Downsampling) oder nehmen Sie kleinere Bilder"
    )


def test_the_batch_memory_refusal_reads_in_german(german):
    plan = PRESETS["resnet50_imagenet"].spec().validate()
    per_image, state = plan.activations * 4, plan.params * 16
    with pytest.raises(SpecError) as info:
        check_memory(plan, 64, state + 10 * per_image)
    shown = i18n.tr(info.value)
    assert shown.startswith("das Netz: das Training mit Batch-Größe 64 braucht ")
    assert "-mal so viel wie der freie Speicher des Geräts (" in shown
    assert shown.endswith("wählen Sie eine Batch-Größe von höchstens 10 oder ein kleineres Netz")


# --- uploads: refusals and the reasons a file was left out --------------------------------


def test_upload_refusals_read_in_german(german):
    bad = _zip({"../evil.png": _png()} | _classes())
    with pytest.raises(UploadError) as info:
        read_zip(bad, size=8, limits=LIMITS)
    assert str(info.value).startswith("the zip entry '../evil.png' climbs out of its folder")
    assert i18n.tr(info.value) == (
        "der ZIP-Eintrag '../evil.png' verlässt mit „..“ seinen Ordner, was es in einer "
        "sicheren ZIP-Datei nie gibt; erstellen Sie die ZIP-Datei neu mit einem üblichen "
        "Programm und packen Sie die Klassenordner selbst hinein"
    )
    with pytest.raises(UploadError) as info:
        read_zip(_zip(_classes(n_dog=0)), size=8, limits=LIMITS)
    assert i18n.tr(info.value).startswith("nur ein Klassenordner gefunden, 'cat'; ")


def test_a_short_class_list_and_skipped_files_read_in_german(german):
    with pytest.raises(UploadError) as info:
        read_zip(_zip(_classes(n_cat=1) | {"dog/x.png": b"not a png"}), size=8, limits=LIMITS)
    # the list of short classes is joined into one text: each part is matched back
    assert "'cat' hat 1" in i18n.tr(info.value)
    blob = _zip(_classes() | {"dog/cut.png": b"not a png", "loose.png": _png()})
    *_, skipped = read_zip(blob, size=8, limits=LIMITS)
    shown = {name: i18n.tr(why) for name, why in skipped}
    assert shown["loose.png"] == "liegt in keinem Klassenordner"
    assert shown["dog/cut.png"].startswith("ist kein Bild, das diese App lesen kann (PNG")


# --- run import: the file in the zip, the problem and the fix -----------------------------


def _run_zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, blob in entries.items():
            z.writestr(name, blob)
    return out.getvalue()


def test_run_import_refusals_read_in_german(german, tmp_path):
    store = RunStore(tmp_path / "data")
    with pytest.raises(RunImportError) as info:
        import_run(store, "bob", b"not a zip")
    assert str(info.value) == "the zip: is not a zip archive; choose the .zip that Export made"
    assert i18n.tr(info.value) == (
        "die ZIP-Datei: ist kein ZIP-Archiv; wählen Sie die .zip-Datei, die "
        "„Als Zip exportieren“ erstellt hat"
    )
    with pytest.raises(RunImportError) as info:
        import_run(store, "bob", _run_zip({"run.json": b"{oops"}))
    assert str(info.value).startswith("run.json in the zip: is not valid JSON (line 1: ")
    assert i18n.tr(info.value).startswith("run.json in der ZIP-Datei: ist kein gültiges JSON")
    assert i18n.tr(info.value).endswith(
        "; exportieren Sie den Lauf erneut und importieren Sie diesen Export"
    )


# --- the run store: quota and a database that could not be used ---------------------------


def test_the_quota_refusal_reads_in_german(german):
    full = quota_refusal(10**9, 0)
    assert str(full).startswith("you have 1000000000 stored runs, the most this server keeps")
    assert i18n.tr(full) == (
        "Sie haben 1000000000 gespeicherte Läufe, mehr behält dieser Server für eine Person "
        "nicht; löschen Sie alte Läufe auf der Seite „Läufe“ und starten Sie diesen dann erneut"
    )


def test_a_database_moved_aside_is_announced_in_german(german, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / DB_NAME).write_bytes(b"this is not SQLite at all, but long enough to look" * 4)
    store = RunStore(root)
    assert store.message.startswith("the run database could not be used (")
    shown = i18n.tr(store.message)
    assert shown.startswith("die Laufdatenbank war nicht nutzbar (sie ist keine SQLite-Datenbank (")
    assert f"; sie wurde nach {DB_NAME}.broken-" in shown
    assert i18n.tr(_stored(store.message)) == shown  # the same from the text alone


# --- a network file that cannot be read -----------------------------------------------------


def test_spec_file_refusals_read_in_german(german):
    with pytest.raises(SpecError) as info:
        NetSpec.from_json("{oops")
    assert i18n.tr(info.value).startswith("die Datei: kein gültiges JSON (Zeile 1, Spalte 2: ")
    with pytest.raises(SpecError) as info:
        NetSpec.from_json('{"schema": 0}')
    assert i18n.tr(info.value) == (
        "das Netz: diese Datei hat das Schema 0, diese Version von ResNet Explorer liest aber "
        "Schema 1; speichern Sie sie erneut auf der Seite „Bauen“"
    )
    doc = '{"schema": 1, "input_shape": "3x32x32", "num_classes": 10, "blocks": []}'
    with pytest.raises(SpecError) as info:
        NetSpec.from_json(doc)
    assert str(info.value).startswith("the network: 'input_shape' must be a list of whole numbers")
    assert i18n.tr(info.value).startswith(
        "das Netz: 'input_shape' muss eine Liste ganzer Zahlen wie [3, 32, 32] sein, nicht "
    )


def test_a_repr_field_only_matches_quoted_text(german):
    # "{c!r} has {k}" must not swallow a sentence that merely contains " has "
    assert i18n.tr("this file has no quotes at all") == "this file has no quotes at all"
    assert i18n.tr("'cat' has 2") == "'cat' hat 2"


def test_a_run_stopped_for_its_owners_time_reads_in_german(german):
    policy = Policy(owner_seconds=1800)
    why = say("{text}, so this run stopped", text=quota_used(policy, 1860))
    stored = _stored(say("{why} at step {step}", why=why, step=120))
    assert stored == (
        "you have used your 30 minutes of training time for this hour (31 min), "
        "so this run stopped at step 120"
    )
    assert i18n.tr(stored) == (
        "Sie haben Ihre 30 Minuten Trainingszeit für diese Stunde aufgebraucht (31 min), "
        "darum wurde dieser Lauf gestoppt bei Schritt 120"
    )
    refusal = quota_message(policy, 1860, 90)
    assert i18n.tr(_stored(refusal)).endswith("; ein neuer Lauf kann in etwa 2 min starten")


def test_a_diverged_or_failed_run_reads_in_german(german):
    diverged = DivergedError(40, 0.5)
    assert i18n.tr(_stored(str(diverged))) == (
        "der Loss wurde bei Schritt 40 NaN oder unendlich (Lernrate 0,5); der Lauf wurde dort "
        "gestoppt. Senken Sie die Lernrate (versuchen Sie 0,05), fügen Sie Warm-up-Schritte "
        "hinzu oder schalten Sie die Batch-Normalisierung ein"
    )
    oom = failure_message(MemoryError(), 7)
    assert str(oom).startswith("the run ran out of memory at step 7; ")
    assert i18n.tr(_stored(oom)) == (
        "dem Lauf ging bei Schritt 7 der Speicher aus; nehmen Sie eine kleinere Batch-Größe "
        "oder ein kleineres Netz"
    )
