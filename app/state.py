"""The only module that knows session_state keys. Per-user state is small: an owner
token, the network on the builder, and run ids; runs live in the shared job manager."""

from __future__ import annotations

import secrets

import streamlit as st

from core.presets import PRESETS
from core.spec import NetSpec

DEFAULT_PRESET = "resnet8_narrow"
_OWNER, _SPEC, _PRESET, _ACTIVE, _SELECTED = "owner", "spec", "preset_key", "active_job", "block"
OWNER_PARAM = "me"  # in the URL, so a reload or a reconnect finds the same runs


def owner() -> str:
    """This browser's owner token: from the session, else the URL, else a new one.

    It is written back to the URL on every run, so reloading the page (which starts a
    new Streamlit session) finds the same runs. 128 random bits: unguessable.
    """
    token = st.session_state.get(_OWNER) or st.query_params.get(OWNER_PARAM)
    if not token or len(token) != 32 or not all(c in "0123456789abcdef" for c in token):
        token = secrets.token_hex(16)
    st.session_state[_OWNER] = token
    if st.query_params.get(OWNER_PARAM) != token:
        st.query_params[OWNER_PARAM] = token
    return token


def preset_key() -> str:
    return st.session_state.get(_PRESET, DEFAULT_PRESET)


def current_spec() -> NetSpec:
    """The network on the builder: the chosen preset unless the user changed it."""
    if _SPEC not in st.session_state:
        st.session_state[_SPEC] = PRESETS[preset_key()].spec()
    return st.session_state[_SPEC]


def set_spec(spec: NetSpec, preset: str | None = None) -> None:
    st.session_state[_SPEC] = spec
    if preset is not None:
        st.session_state[_PRESET] = preset


def selected_block() -> int:
    return st.session_state.get(_SELECTED, 0)


def select_block(index: int) -> None:
    st.session_state[_SELECTED] = index


def active_job() -> str | None:
    """The run the Train page follows (None: none started in this session yet)."""
    return st.session_state.get(_ACTIVE)


def set_active_job(job_id: str | None) -> None:
    st.session_state[_ACTIVE] = job_id


def upload_digest() -> str | None:
    """The SHA-256 of the zip this browser uploaded last (its images stay on the server)."""
    upload = st.session_state.get("upload")
    return upload[1].digest if upload else None


def upload_report(file_id: str):
    """The check report of the uploaded file `file_id`, if it was checked already."""
    upload = st.session_state.get("upload")
    return upload[1] if upload and upload[0] == file_id else None


def set_upload(file_id: str | None, report) -> None:
    st.session_state["upload"] = (file_id, report) if report is not None else None


# --- Explain page ------------------------------------------------------------------------
# The last result of each kind ("maps", "localisation", "sanity") with the run it belongs
# to, so a rerun (a download, a tab) does not throw away minutes of computation. A few
# images' maps: kilobytes, not models or datasets. Replaced by the next computation of its
# kind; never shared.
_EXPLAIN, _EXPLAIN_PENDING = "explain_results", "explain_pending"


def explain_result(kind: str, run: str):
    """The last result of `kind` if it was computed for `run`, else None."""
    stored = st.session_state.get(_EXPLAIN, {}).get(kind)
    return stored[1] if stored is not None and stored[0] == run else None


def set_explain_result(kind: str, run: str, value) -> None:
    st.session_state.setdefault(_EXPLAIN, {})[kind] = (run, value)


def explain_pending() -> str | None:
    """What the page was computing when its script was stopped (a click on Cancel, or any
    other widget, interrupts it); None when the last computation ended by itself."""
    return st.session_state.get(_EXPLAIN_PENDING)


def set_explain_pending(what: str | None) -> None:
    st.session_state[_EXPLAIN_PENDING] = what
