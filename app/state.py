"""The only module that knows session_state keys. Per-user state is small: an owner
token, the network on the builder, and run ids; runs live in the shared job manager.

Pages read and write their state through the functions here; widgets whose value a page
or a test reads back take their key from here too (the constants and `*_key` functions).
Tests jump to a state with these constants, never with a spelled-out key.
"""

from __future__ import annotations

import secrets

import streamlit as st

from core.presets import PRESETS
from core.spec import NetSpec

DEFAULT_PRESET = "resnet8_narrow"
OWNER_PARAM = "me"  # in the URL, so a reload or a reconnect finds the same runs

# Session keys (values the app keeps between reruns).
OWNER, SPEC, PRESET, SELECTED = "owner", "spec", "preset_key", "block"
ACTIVE_JOB, COMPARE_JOB, UPLOAD = "active_job", "compare_job", "upload"
SPEC_VERSION, LIVE_ERROR, LIVE_CHARTS = "spec_version", "live_error", "live_charts"
# Widget keys that a page or a test reads back.
PRESET_SELECT, NEW_KIND, SPEC_UPLOAD = "preset_select", "new_kind", "spec_upload"
TRAIN_DATASET, UPLOAD_ZIP, SEED = "train_dataset", "upload_zip", "seed"
RACE_DEPTH, RACE_DATA, RACE_STEPS = "race_depth", "race_data", "race_steps"
DEGRADATION_STEPS = "degradation_steps"
OVERLAY_PICK, RUNS_OPEN = "overlay_pick", "runs_open"
INIT_DEPTHS, INIT_BN, INIT_ACT = "init_depths", "init_bn", "init_act"
COMPARE_TAB, _OPEN_TAB = "compare_tab", "open_tab"
LANG_SELECT, PRESENT_TOGGLE = "lang_select", "present_toggle"
# The lesson page keeps one value of each kind per lesson: `lesson_key(kind, lesson)`.
LESSON_JOBS, LESSON_PICK, LESSON_STEP = "lesson_jobs_", "lesson_pick_", "lesson_step_"
LESSON_RAN, LESSON_TIMES = "lesson_ran_", "lesson_times_"  # times: [started, seen ended]


def widget_value(key: str, default=None):
    """The value of the widget with this key (one of the constants above)."""
    return st.session_state.get(key, default)


def set_widget_value(key: str, value) -> None:
    """Set a widget's value before it is drawn (e.g. from the URL)."""
    st.session_state[key] = value


def lesson_key(kind: str, lesson: str) -> str:
    """The session key (or the widget key, for LESSON_PICK) of one lesson's value."""
    return kind + lesson


def lesson_value(kind: str, lesson: str, default=None):
    return st.session_state.get(lesson_key(kind, lesson), default)


def set_lesson_value(kind: str, lesson: str, value) -> None:
    st.session_state[lesson_key(kind, lesson)] = value


def owner() -> str:
    """This browser's owner token: from the session, else the URL, else a new one.

    It is written back to the URL on every run of every page (the entry script calls it
    before navigation), so reloading any page (which starts a new Streamlit session)
    finds the same runs. 128 random bits: unguessable.
    """
    token = st.session_state.get(OWNER) or st.query_params.get(OWNER_PARAM)
    if not token or len(token) != 32 or not all(c in "0123456789abcdef" for c in token):
        token = secrets.token_hex(16)
    st.session_state[OWNER] = token
    if st.query_params.get(OWNER_PARAM) != token:
        st.query_params[OWNER_PARAM] = token
    return token


def preset_key() -> str:
    return st.session_state.get(PRESET, DEFAULT_PRESET)


def current_spec() -> NetSpec:
    """The network on the builder: the chosen preset unless the user changed it."""
    if SPEC not in st.session_state:
        st.session_state[SPEC] = PRESETS[preset_key()].spec()
    return st.session_state[SPEC]


def set_spec(spec: NetSpec, preset: str | None = None) -> None:
    st.session_state[SPEC] = spec
    if preset is not None:
        st.session_state[PRESET] = preset


def spec_version() -> int:
    """Bumped on every structural edit, so per-block widgets start from the new spec."""
    return st.session_state.setdefault(SPEC_VERSION, 0)


def bump_spec_version() -> None:
    st.session_state[SPEC_VERSION] = spec_version() + 1


def field_key(version: int, block: int, field: str) -> str:
    """The Build page's widget for `field` of block `block`, at spec version `version`."""
    return f"f{version}_{block}_{field}"


def selected_block() -> int:
    return st.session_state.get(SELECTED, 0)


def select_block(index: int) -> None:
    st.session_state[SELECTED] = index


def active_job() -> str | None:
    """The run the Train page follows (None: none started in this session yet)."""
    return st.session_state.get(ACTIVE_JOB)


def set_active_job(job_id: str | None) -> None:
    st.session_state[ACTIVE_JOB] = job_id


def compare_job() -> str | None:
    """The experiment the Compare page follows (None: none started in this session)."""
    return st.session_state.get(COMPARE_JOB)


def set_compare_job(job_id: str | None) -> None:
    st.session_state[COMPARE_JOB] = job_id


def open_tab(tabs: str, label: str) -> None:
    """Open the tab `label` of the tabs keyed `tabs` on the next run (a widget's state can
    only be set before the widget is drawn, so this waits for `apply_open_tab`)."""
    st.session_state.setdefault(_OPEN_TAB, {})[tabs] = label


def apply_open_tab(tabs: str) -> None:
    """Call before drawing the tabs keyed `tabs`."""
    label = st.session_state.get(_OPEN_TAB, {}).pop(tabs, None)
    if label is not None:
        st.session_state[tabs] = label


def train_setting_key(setting: str, dataset: str) -> str:
    """The Train page's widget of `setting` ("train_size", "epochs", "batch", "lr", ...)
    for `dataset`: one per dataset, so each dataset keeps its own defaults."""
    return f"{setting}_{dataset}"


def skip_key(job: str, arm: str, block: int, on: bool) -> str:
    """A live skip toggle; its key holds the block's live state, so when the run applies
    a switch a fresh toggle shows the new state."""
    return f"skip_{job}_{arm}_{block}_{on}"


def log_scale_key(panel: str) -> str:
    """The live panel `panel`'s toggle for a log loss axis."""
    return f"{panel}_logy"


def toggled(key: str) -> bool:
    """The value of the toggle `key` (in its on_change callback)."""
    return bool(st.session_state[key])


def set_live_error(message: str) -> None:
    """A refused live command, shown once on the next run of the panel."""
    st.session_state[LIVE_ERROR] = message


def pop_live_error() -> str | None:
    return st.session_state.pop(LIVE_ERROR, None)


def drawn_charts(panel: str):
    """The live panel `panel`'s figure cache (app.live_figures.LiveFigures), or None: a
    poll that finds a figure's data unchanged reuses it instead of rebuilding it. One
    per panel: a few hundred kilobytes."""
    return st.session_state.get(LIVE_CHARTS, {}).get(panel)


def set_drawn_charts(panel: str, cache) -> None:
    st.session_state.setdefault(LIVE_CHARTS, {})[panel] = cache


def upload_digest() -> str | None:
    """The SHA-256 of the zip this browser uploaded last (its images stay on the server)."""
    upload = st.session_state.get(UPLOAD)
    return upload[1].digest if upload else None


def upload_report(file_id: str):
    """The check report of the uploaded file `file_id`, if it was checked already."""
    upload = st.session_state.get(UPLOAD)
    return upload[1] if upload and upload[0] == file_id else None


def set_upload(file_id: str | None, report) -> None:
    st.session_state[UPLOAD] = (file_id, report) if report is not None else None


# --- Explain page ------------------------------------------------------------------------
# The last result of each kind ("maps", "localisation", "sanity") with the run it belongs
# to, so a rerun (a download, a tab) does not throw away minutes of computation. A few
# images' maps: kilobytes, not models or datasets. Replaced by the next computation of its
# kind; never shared.
EXPLAIN, EXPLAIN_PENDING = "explain_results", "explain_pending"


def explain_result(kind: str, run: str):
    """The last result of `kind` if it was computed for `run`, else None."""
    stored = st.session_state.get(EXPLAIN, {}).get(kind)
    return stored[1] if stored is not None and stored[0] == run else None


def set_explain_result(kind: str, run: str, value) -> None:
    st.session_state.setdefault(EXPLAIN, {})[kind] = (run, value)


def explain_pending() -> str | None:
    """What the page was computing when its script was stopped (a click on Cancel, or any
    other widget, interrupts it); None when the last computation ended by itself."""
    return st.session_state.get(EXPLAIN_PENDING)


def set_explain_pending(what: str | None) -> None:
    st.session_state[EXPLAIN_PENDING] = what


# --- Runs page and share links -------------------------------------------------------------
# Widget keys the Runs page and its tests read back; the Explain page's run select and its
# choice of images, which the Runs and Inside pages set before opening Explain.
RUNS_FILTER, RUNS_IMPORT, RUNS_OVERLAY = "runs_filter", "runs_import", "runs_overlay"
EXPLAIN_RUN, EXPLAIN_PICK = "ex_run", "ex_how"
# The Explain page's other widgets that tests set: the method, images, block and button of
# the maps tab, and the two check tabs' methods, image count and button (prefix + suffix).
EXPLAIN_METHOD, EXPLAIN_K, EXPLAIN_BLOCK = "ex_method", "ex_k", "ex_block"
EXPLAIN_GO, EXPLAIN_PER_IMAGE = "ex_go", "ex_per_image"
EXPLAIN_SANITY, EXPLAIN_LOCALISATION = "ex_san", "ex_loc"


# The Inside page's tabs; a widget's key is `inside_key(tab, widget, *what it is for)`.
INSIDE_LESION, INSIDE_LANDSCAPE, INSIDE_ERRORS = "lesion", "ls", "err"
INSIDE_OVERFIT, INSIDE_TRANSFER = "of", "tr"


def inside_key(tab: str, widget: str, *parts) -> str:
    """E.g. inside_key(INSIDE_LANDSCAPE, "grid", run_id): the grid box for that run."""
    return "_".join(("in", tab, widget, *map(str, parts)))


def window_key(side: int) -> str:
    """The occlusion window's widget on images `side` pixels wide."""
    return f"ex_window_{side}"


# Session keys: the runs waiting for a delete confirmation, the last export made, the
# last import's file and result.
RUNS_DELETE, RUNS_EXPORT, RUNS_IMPORTED = "runs_to_delete", "runs_exported", "runs_imported"
SHARED_RUN_PARAM, SHARED_TOKEN_PARAM = "run", "view"  # ?run=<id>&view=<token>


def open_in_train(run_id: str) -> None:
    """Show `run_id` on the Train page (its charts; the controls only while it runs)."""
    set_active_job(run_id)


def open_in_explain(run_id: str) -> None:
    """Choose `run_id` in the Explain page's run select, before that page draws it."""
    st.session_state[EXPLAIN_RUN] = run_id


def open_in_overlay(picks: list[tuple[str, str]], tab: str) -> None:
    """Overlay these (run, network) pairs on the Compare page, its tab `tab` open."""
    st.session_state[OVERLAY_PICK] = list(picks)
    open_tab(COMPARE_TAB, tab)


def delete_pending() -> list[str]:
    """The runs the user asked to delete, waiting for the confirmation."""
    return st.session_state.get(RUNS_DELETE, [])


def ask_delete(run_ids: list[str]) -> None:
    st.session_state[RUNS_DELETE] = list(run_ids)


def exported(run_id: str) -> bytes | None:
    """The zip exported last, if it is `run_id`'s (one at a time: a few megabytes)."""
    kept = st.session_state.get(RUNS_EXPORT)
    return kept[1] if kept and kept[0] == run_id else None


def set_exported(run_id: str, data: bytes) -> None:
    st.session_state[RUNS_EXPORT] = (run_id, data)


def imported(file_id: str):
    """What importing the uploaded file `file_id` gave (a run id or an error), if done."""
    kept = st.session_state.get(RUNS_IMPORTED)
    return kept[1] if kept and kept[0] == file_id else None


def set_imported(file_id: str, outcome) -> None:
    st.session_state[RUNS_IMPORTED] = (file_id, outcome)


def shared_link() -> tuple[str, str] | None:
    """(run id, token) when the URL is a share link `?run=<id>&view=<token>`, else None."""
    run = st.query_params.get(SHARED_RUN_PARAM)
    token = st.query_params.get(SHARED_TOKEN_PARAM)
    return (run, token) if run and token else None


def explain_misclassified(run: str) -> None:
    """Open the Explain page on `run` and its most confidently wrong validation images
    (the Inside page's gallery button); its widgets read these keys when next drawn."""
    st.session_state[EXPLAIN_RUN] = run
    st.session_state[EXPLAIN_PICK] = "misclassified"
