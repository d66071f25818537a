"""Each view on its own, jumped to a state through session_state (a finished run)."""

import pytest

from app import choices, services, state
from core.presets import PRESETS
from core.spec import NetSpec, PoolSpec
from core.store import RunStore
from tests.app.conftest import OWNER, page
from tests.app.test_build_view import shown


def _texts(at):
    return " ".join(
        str(e.value)
        for e in [*at.markdown, *at.caption, *at.info, *at.success, *at.error, *at.warning]
    )


def test_train_view_shows_a_finished_run_with_its_charts(finished_run):
    at = page("train")
    at.session_state[state.ACTIVE_JOB] = finished_run
    at.run()
    assert not at.exception
    assert "Finished" in _texts(at)
    charts = at.get("plotly_chart")
    assert len(charts) == 4  # loss, accuracy, gradient vs depth, heatmap


def test_train_view_starts_a_run_on_built_in_data():
    at = page("train")
    at.run()
    at.selectbox(key=state.train_setting_key("train_size", "shapes")).set_value(16)
    at.number_input(key=state.train_setting_key("epochs", "shapes")).set_value(1)
    schedule = at.selectbox(key=state.train_setting_key("schedule", "shapes"))
    assert schedule.options[2] == "cosine: smoothly down to 0"  # a label, not the identifier
    assert schedule.value == "cosine"  # the Shapes default, as the config stores it
    at.button[0].click().run()  # the form's Start button
    assert not at.exception, at.exception
    job = at.session_state[state.ACTIVE_JOB]
    mgr = services.job_manager()
    info = mgr.info(job, OWNER)
    assert info.config.epochs == 1 and info.arms == ("ResNet-8 narrow",)
    assert mgr.wait(job, timeout=120) == "finished"
    at.run()
    assert "Finished" in _texts(at)


def test_train_view_says_why_a_network_does_not_fit_the_data():
    at = page("train")
    at.session_state[state.SPEC] = NetSpec(
        name="too many pools", input_shape=(3, 32, 32), num_classes=10, blocks=(PoolSpec(),) * 4
    )
    at.run()
    at.selectbox(key=state.TRAIN_DATASET).set_value("digits").run()
    at.selectbox(key=state.train_setting_key("train_size", "digits")).set_value(8).run()
    at.button[0].click().run()
    assert not at.exception
    message = at.error[0].value
    assert "Could not start: too many pools does not fit 1x8x8 images (block 3:" in message
    assert "the network:" not in message
    assert "block 3: a 2x2 pool with stride 2 turns a 1x1 input into nothing" in message


@pytest.fixture
def run_store(tmp_path, monkeypatch) -> RunStore:
    """The Runs page's run store, in this test's own folder (not the user's cache)."""
    store = RunStore(tmp_path / "store")
    monkeypatch.setattr(services, "_store", store)
    return store


def test_runs_view_lists_opens_and_exports(finished_run, run_store):
    at = page("runs")
    at.run()
    assert not at.exception
    table = at.dataframe[0].value
    assert finished_run in list(table["run"])
    row = table[table["run"] == finished_run].iloc[0]
    assert row["status"] == "finished" and row["networks"] == "Plain-8, ResNet-8"
    at.selectbox(key=state.RUNS_OPEN).set_value(finished_run).run()
    labels = [shown(b.label) for b in at.get("download_button")]  # as read
    assert "Plain-8: tables (zip of steps, evaluations, events CSV)" in labels
    assert "ResNet-8: network (spec JSON)" in labels
    assert len(at.get("plotly_chart")) == 4


def test_runs_view_is_empty_for_another_browser(finished_run, run_store):
    at = page("runs")
    at.session_state[state.OWNER] = "f" * 32
    at.run()
    assert "No runs yet in this browser" in _texts(at)


def test_compare_view_overlays_runs_and_measures_gradient_flow(finished_run):
    at = page("compare")
    at.run()
    assert not at.exception
    picked = at.multiselect(key=state.OVERLAY_PICK).value
    assert (finished_run, "Plain-8") in picked
    assert len(at.get("plotly_chart")) == 4  # the overlay; gradient flow waits for its tab
    at.session_state[state.COMPARE_TAB] = choices.INIT_TAB
    at.run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 4 + 2  # overlay charts (4) + gradient flow (2)


def test_compare_view_races_twins(finished_run):
    at = page("compare")
    at.run()
    at.selectbox(key=state.RACE_DEPTH).set_value("8 layers, narrow")
    at.number_input(key=state.RACE_STEPS).set_value(10)
    next(b for b in at.button if b.label == "Race them").click().run()
    assert not at.exception
    job = at.session_state[state.COMPARE_JOB]
    assert at.session_state[state.COMPARE_TAB] == choices.LIVE_TAB  # shown in its own tab
    mgr = services.job_manager()
    info = mgr.info(job, OWNER)
    assert info.arms == ("Plain-8", "ResNet-8")
    assert mgr.wait(job, timeout=120) == "finished"


def test_build_view_edits_blocks_and_shows_errors_next_to_them():
    at = page("build")
    at.session_state[state.SPEC] = PRESETS["resnet20"].spec()
    at.session_state[state.PRESET] = "resnet20"
    at.run()
    assert not at.exception
    at.radio[0].set_value(3).run()  # block 3: the first block that changes shape
    at.selectbox(key=state.field_key(0, 3, "shortcut")).set_value("identity").run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("block 3: the skip goes from 16x32x32 to 32x16x16" in e for e in errors)
    assert any(e.startswith("the skip goes from") for e in errors)  # beside the block
    assert at.radio[0].options[3].startswith("⚠ 3 · basic 32")
    at.selectbox(key=state.field_key(0, 3, "shortcut")).set_value("projection").run()
    assert not at.error
    assert at.session_state[state.SPEC].blocks[3].shortcut == "projection"


def test_build_view_adds_moves_and_deletes_blocks():
    at = page("build")
    at.session_state[state.SPEC] = PRESETS["resnet8_narrow"].spec()
    at.session_state[state.PRESET] = "resnet8_narrow"
    at.run()
    n = len(at.session_state[state.SPEC].blocks)
    at.selectbox(key=state.NEW_KIND).set_value("dropout")
    next(b for b in at.button if b.label == "Add after").click().run()
    blocks = at.session_state[state.SPEC].blocks
    assert len(blocks) == n + 1 and blocks[1].kind == "dropout"
    next(b for b in at.button if b.label == "Up").click().run()
    assert at.session_state[state.SPEC].blocks[0].kind == "dropout"
    next(b for b in at.button if b.label == "Delete").click().run()
    assert [b.kind for b in at.session_state[state.SPEC].blocks] == ["basic"] * n
    assert not at.exception


def _zip(classes: dict[str, int]) -> bytes:
    import io
    import zipfile

    from PIL import Image

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for c, (name, n) in enumerate(classes.items()):
            for i in range(n):
                png = io.BytesIO()
                Image.new("RGB", (12, 12), (40 * c, 200 - 40 * c, 7 * i)).save(png, "PNG")
                z.writestr(f"{name}/{i}.png", png.getvalue())
        z.writestr("cat/notes.txt", "not an image")
    return buf.getvalue()


def test_train_view_takes_a_zip_of_class_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_DATA", str(tmp_path))
    at = page("train")
    at.run()
    at.selectbox(key=state.TRAIN_DATASET).set_value("upload").run()
    at.file_uploader(key=state.UPLOAD_ZIP).upload(
        "pets.zip", _zip({"cat": 12, "dog": 10}), "application/zip"
    ).run()
    assert not at.exception
    assert "22 images in 2 classes: cat (12), dog (10)." in at.success[0].value
    assert list((tmp_path / "uploads").glob("*.zip"))  # kept, named by its hash
    at.number_input(key=state.train_setting_key("epochs", "upload")).set_value(1)
    at.number_input(key=state.train_setting_key("batch", "upload")).set_value(8)
    at.button[0].click().run()
    assert not at.exception and not at.error
    job = at.session_state[state.ACTIVE_JOB]
    assert services.job_manager().wait(job, timeout=120) == "finished"


def test_train_view_refuses_a_zip_with_one_class(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_DATA", str(tmp_path))
    at = page("train")
    at.run()
    at.selectbox(key=state.TRAIN_DATASET).set_value("upload").run()
    at.file_uploader(key=state.UPLOAD_ZIP).upload(
        "one.zip", _zip({"cat": 12}), "application/zip"
    ).run()
    assert not at.exception
    assert at.error[0].value.startswith("one.zip was not accepted:")
    assert "found only one class folder, 'cat'" in at.error[0].value
    at.button[0].click().run()
    assert "Could not start: upload a zip of class folders first" in at.error[-1].value
