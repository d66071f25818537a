"""The Runs page over the real run store (SQLite in a temporary folder) and the job
manager: list, filter, delete after a confirmation, export and import, resume's refusal,
opening a run on other pages; and the read-only share link."""

import io
import zipfile

import pytest
from streamlit.testing.v1 import AppTest

from app import services, state
from app.runs_actions import LINK_INVALID as INVALID
from app.runs_actions import NOT_STORED, share_url
from core.config import TrainConfig
from core.jobs import Arm, JobError
from core.run_import import import_run
from core.store import RunStore, StoreError
from tests.app.conftest import OWNER, ROOT, TIMEOUT, page
from tests.app.test_build_view import shown
from tests.core.helpers import separable_data, tiny_spec
from tests.core.test_export import store_run

SPECS = {"plain": tiny_spec("plain8_narrow"), "residual": tiny_spec("resnet8_narrow")}


@pytest.fixture
def store(tmp_path, monkeypatch) -> RunStore:
    """The server's run store, in a folder of this test's own."""
    store = RunStore(tmp_path / "data")
    monkeypatch.setattr(services, "_store", store)
    return store


@pytest.fixture
def stored(store) -> str:
    """A finished two-network run with curves, evaluations and weights in the store."""
    return store_run(store, SPECS, owner=OWNER)[0]


@pytest.fixture(scope="module")
def second_run() -> str:
    mgr = services.job_manager()
    job = mgr.submit(
        OWNER,
        "second",
        [Arm("ResNet-8", tiny_spec("resnet8_narrow"))],
        separable_data(),
        TrainConfig(steps=6, batch_size=16, eval_every=3, device="cpu"),
    )
    assert mgr.wait(job, timeout=60) == "finished"
    return job


def _texts(at) -> str:
    elements = [*at.markdown, *at.caption, *at.info, *at.success, *at.error, *at.warning]
    return " ".join(str(e.value) for e in elements)


def _table(at):
    return at.dataframe[0].value


def _open(at, run_id: str):
    at.selectbox(key=state.RUNS_OPEN).set_value(run_id).run()
    assert not at.exception, at.exception
    return at


def _button(at, key: str):
    return at.button(key=key)


def test_the_list_holds_trained_and_stored_runs_with_their_numbers(finished_run, stored):
    at = page("runs")
    at.run()
    assert not at.exception, at.exception
    table = _table(at)
    assert {finished_run, stored} <= set(table["run"])
    row = table[table["run"] == stored].iloc[0]
    assert row["status"] == "finished" and row["dataset"] == "Shapes"
    assert row["steps"] == "2 / 0"  # store_run logs steps 1 and 2
    assert row["best val accuracy"] == "75.0%"  # its one evaluation
    assert row["networks"] == "plain, residual"
    trained = table[table["run"] == finished_run].iloc[0]
    assert trained["networks"] == "Plain-8, ResNet-8" and trained["steps"] == "12 / 12"
    assert trained["best val accuracy"].endswith("%")


def test_the_filter_shows_only_runs_of_one_status(finished_run, stored, store):
    interrupted = store_run(store, SPECS, owner=OWNER)[0]
    store.mark_interrupted(interrupted)
    at = page("runs")
    at.run()
    assert {"all", "finished", "interrupted"} <= set(at.selectbox(key=state.RUNS_FILTER).options)
    at.selectbox(key=state.RUNS_FILTER).set_value("interrupted").run()
    assert list(_table(at)["run"]) == [interrupted]
    assert at.selectbox(key=state.RUNS_OPEN).options == [f"{interrupted} · exported"]
    at.selectbox(key=state.RUNS_FILTER).set_value("finished").run()
    assert interrupted not in set(_table(at)["run"])
    assert {finished_run, stored} <= set(_table(at)["run"])


def test_delete_asks_first_and_keep_keeps_the_run(stored, store):
    at = _open(page("runs").run(), stored)
    _button(at, "runs_delete").click().run()
    assert "Delete this run for good: exported?" in _texts(at)
    assert store.run(stored).id == stored  # nothing deleted yet
    _button(at, "runs_delete_no").click().run()
    assert "for good" not in _texts(at)
    assert store.run(stored).id == stored
    _button(at, "runs_delete").click().run()
    _button(at, "runs_delete_yes").click().run()
    assert not at.exception, at.exception
    with pytest.raises(StoreError, match="not stored"):
        store.run(stored)
    assert not (store.runs_dir / stored).exists()  # its weights went too
    shown = set(_table(at)["run"]) if at.dataframe else set()
    assert stored not in shown


def test_delete_of_a_trained_run_removes_it_from_the_manager(store):
    mgr = services.job_manager()
    job = mgr.submit(
        OWNER,
        "to delete",
        [Arm("ResNet-8", tiny_spec("resnet8_narrow"))],
        separable_data(),
        TrainConfig(steps=2, batch_size=16, device="cpu"),
    )
    assert mgr.wait(job, timeout=60) == "finished"
    at = _open(page("runs").run(), job)
    _button(at, "runs_delete").click().run()
    _button(at, "runs_delete_yes").click().run()
    assert not at.exception, at.exception
    assert job not in {i.id for i in mgr.list(OWNER)}
    assert job not in set(_table(at)["run"])


def test_export_gives_a_zip_that_import_run_reads_back(stored, store, tmp_path):
    at = _open(page("runs").run(), stored)
    _button(at, "runs_export_make").click().run()
    assert not at.exception, at.exception
    download = at.get("download_button")
    assert "Download exported.zip" in [d.label for d in download]
    data = at.session_state[state.RUNS_EXPORT][1]  # the bytes the button offers
    assert zipfile.ZipFile(io.BytesIO(data)).testzip() is None
    other = RunStore(tmp_path / "elsewhere")
    again = import_run(other, "bob", data)
    info = other.run(again)
    assert (info.name, info.arms, info.step, info.best_val_accuracy) == (
        "exported",
        ("plain", "residual"),
        2,
        0.75,
    )
    before, after = store.snapshot(stored, "residual"), other.snapshot(again, "residual")
    assert [r.loss for r in after.steps] == [r.loss for r in before.steps]


def test_a_run_that_is_not_stored_says_so_instead_of_exporting(finished_run, store):
    at = _open(page("runs").run(), finished_run)
    assert NOT_STORED.format(name="tiny twin") in _texts(at)
    assert "runs_export_make" not in [b.key for b in at.button]


def test_import_of_a_good_zip_adds_the_run(stored, store, tmp_path):
    from core.export import export_run

    data = export_run(store, stored)
    at = page("runs").run()
    at.file_uploader(key=state.RUNS_IMPORT).upload("lesson.zip", data, "application/zip").run()
    assert not at.exception, at.exception
    message = shown(at.success[0].value)  # as read: the file name is escaped Markdown
    assert message.startswith("Imported lesson.zip as run ")
    new = message.removeprefix("Imported lesson.zip as run ").removesuffix(".")
    assert store.run(new).owner == OWNER
    assert new in set(_table(at)["run"])


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"this is not a zip file", "the zip: is not a zip archive"),
        ("extra", "evil.py in the zip: is not part of a run export"),
    ],
)
def test_import_of_a_bad_zip_names_the_file_and_the_problem(stored, store, content, says):
    if content == "extra":
        from core.export import export_run
        from tests.core.test_export import rezip

        content = rezip(export_run(store, stored), "evil.py", b"import os")
    before = {r.id for r in store.list_runs(OWNER)}
    at = page("runs").run()
    at.file_uploader(key=state.RUNS_IMPORT).upload("run.zip", content, "application/zip").run()
    assert not at.exception, at.exception
    error = shown(at.error[0].value)
    assert error.startswith("run.zip was not imported: ")
    assert says in error
    assert {r.id for r in store.list_runs(OWNER)} == before  # nothing half-stored
    at.run()  # and the page goes on
    assert not at.exception


def test_resume_of_a_finished_run_shows_the_backends_refusal(finished_run, store):
    with pytest.raises(JobError) as refused:
        services.job_manager().resume(finished_run, OWNER)
    at = _open(page("runs").run(), finished_run)
    _button(at, "runs_resume").click().run()
    assert not at.exception, at.exception
    assert str(refused.value) in [e.value for e in at.error]
    assert "cannot be resumed" in str(refused.value)


def test_open_in_train_and_explain_choose_the_run_there(finished_run, store):
    at = _open(page("runs").run(), finished_run)
    _button(at, "runs_train").click().run()
    assert at.session_state[state.ACTIVE_JOB] == finished_run
    _button(at, "runs_explain").click().run()
    assert at.session_state[state.EXPLAIN_RUN] == finished_run
    explain = page("explain")
    explain.session_state[state.EXPLAIN_RUN] = finished_run
    explain.run()
    assert not explain.exception, explain.exception
    assert explain.selectbox(key=state.EXPLAIN_RUN).value == finished_run


def test_overlay_opens_compare_with_the_runs_picked(finished_run, second_run, store):
    at = page("runs").run()
    at.multiselect(key=state.RUNS_OVERLAY).set_value([finished_run, second_run]).run()
    [overlay] = [b for b in at.button if b.label == "Overlay"]
    overlay.click().run()
    assert not at.exception, at.exception
    picks = at.session_state[state.OVERLAY_PICK]
    assert picks == [
        (finished_run, "Plain-8"),
        (finished_run, "ResNet-8"),
        (second_run, "ResNet-8"),
    ]
    compare = page("compare")
    compare.session_state[state.OVERLAY_PICK] = picks
    compare.run()
    assert not compare.exception, compare.exception
    assert compare.multiselect(key=state.OVERLAY_PICK).value == picks


def test_a_store_that_cannot_save_says_so(tmp_path, monkeypatch):
    (tmp_path / "runs.sqlite").mkdir(parents=True)  # a folder where the file should be
    monkeypatch.setattr(services, "_store", RunStore(tmp_path))
    at = page("runs").run()
    assert not at.exception, at.exception
    assert shown(at.warning[0].value).startswith("Runs are not being saved: ")
    assert "is a folder, not a file" in shown(at.warning[0].value)


def test_a_database_moved_aside_is_reported_and_the_page_goes_on(tmp_path, monkeypatch):
    (tmp_path / "runs.sqlite").write_bytes(b"not a database at all\n" * 100)
    monkeypatch.setattr(services, "_store", RunStore(tmp_path))
    at = page("runs").run()
    assert not at.exception, at.exception
    assert at.info[0].value.startswith("The run database could not be used \\(it is not an SQLite")
    assert "moved aside" in at.info[0].value


def test_at_the_cap_the_page_says_so_and_offers_to_delete_old_runs(store, monkeypatch):
    owner = "a" * 32  # a browser of its own: the oldest runs of OWNER are other tests'
    for _ in range(2):
        store_run(store, SPECS, owner=owner)
    monkeypatch.setenv("RESNET_EXPLORER_MAX_RUNS_PER_USER", "2")
    at = page("runs")
    at.session_state[state.OWNER] = owner
    at.run()
    assert not at.exception, at.exception
    assert "you have 2 stored runs, the most this server keeps for one person" in _texts(at)
    _button(at, "runs_delete_old").click().run()
    assert "Delete these 2 runs for good: exported, exported?" in _texts(at)
    _button(at, "runs_delete_yes").click().run()
    assert not at.exception, at.exception
    assert store.list_runs(owner) == []
    assert "the most this server keeps" not in _texts(at)


def test_from_the_apps_menu_open_in_train_and_explain_switch_pages(finished_run, store):
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=TIMEOUT)
    at.session_state[state.OWNER] = OWNER
    at.switch_page("views/runs.py").run()
    assert [t.value for t in at.title] == ["Your runs"]
    _open(at, finished_run)
    _button(at, "runs_train").click().run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Train"]
    assert len(at.get("plotly_chart")) == 4  # the run's charts, there
    at.switch_page("views/runs.py").run()
    _open(at, finished_run)
    _button(at, "runs_explain").click().run()
    assert [t.value for t in at.title] == ["Explain"]
    assert at.selectbox(key=state.EXPLAIN_RUN).value == finished_run


# --- the share link --------------------------------------------------------------------


def _shared(run_id: str, token: str, entry: str = "views/shared.py") -> AppTest:
    at = AppTest.from_file(str(ROOT / "app" / entry), default_timeout=TIMEOUT)
    at.query_params[state.SHARED_RUN_PARAM] = run_id
    at.query_params[state.SHARED_TOKEN_PARAM] = token
    return at.run()


def _no_controls(at) -> None:
    for kind in ("button", "download_button", "toggle", "number_input", "file_uploader"):
        assert not at.get(kind), kind
    assert not at.text_input and not at.slider and not at.checkbox


def test_the_share_button_gives_the_link_of_the_run(stored, store):
    at = _open(page("runs").run(), stored)
    _button(at, "runs_share").click().run()
    token = store.share_token(stored, OWNER)
    assert f"?run={stored}&view={token}" in [c.value for c in at.code]


@pytest.mark.parametrize(
    ("page_url", "link"),
    [
        (None, "?run=r1&view=t-_1"),
        ("http://class.example:8501/runs", "http://class.example:8501/?run=r1&view=t-_1"),
        ("https://x.org/explorer/runs/?me=abc", "https://x.org/explorer/?run=r1&view=t-_1"),
        ("http://localhost:8501/", "http://localhost:8501/?run=r1&view=t-_1"),
    ],
)
def test_a_share_url_points_at_the_apps_root(page_url, link):
    assert share_url("r1", "t-_1", page_url) == link


def test_a_share_link_shows_the_runs_charts_and_settings_read_only(stored, store):
    token = store.share_token(stored, OWNER)
    at = _shared(stored, token)
    assert not at.exception, at.exception
    assert at.title[0].value == "exported"
    assert len(at.get("plotly_chart")) == 4
    assert '"device": "cpu"' in at.code[0].value  # its settings
    _no_controls(at)


def test_a_wrong_token_shows_only_that_the_link_is_not_valid(stored, store):
    other = store_run(store, SPECS, owner=OWNER)[0]
    token = store.share_token(other, OWNER)
    for run, view in ((stored, token), (stored, "guess"), ("nosuchrun", token)):
        at = _shared(run, view)
        assert not at.exception, at.exception
        assert [e.value for e in at.error] == [INVALID]
        assert len(at.main.children) == 1  # nothing else on the page
        assert not at.get("plotly_chart") and not at.title and not at.code


def test_the_app_opens_a_share_link_on_the_shared_page_only(stored, store):
    token = store.share_token(stored, OWNER)
    at = _shared(stored, token, entry="streamlit_app.py")
    assert not at.exception, at.exception
    assert at.title[0].value == "exported"
    assert len(at.get("plotly_chart")) == 4
    _no_controls(at)
    assert state.OWNER not in at.session_state  # a viewer gets no ?me= token, no runs
    wrong = _shared(stored, "wrong", entry="streamlit_app.py")
    assert [e.value for e in wrong.error] == [INVALID] and not wrong.title
