"""The only module that knows session_state keys. Per-user state is small: ids and specs."""

from __future__ import annotations

import streamlit as st

from core.presets import PRESETS
from core.spec import NetSpec

DEFAULT_PRESET = "resnet20"
_SPEC = "spec"
_PRESET = "preset_key"


def preset_key() -> str:
    return st.session_state.get(_PRESET, DEFAULT_PRESET)


def current_spec() -> NetSpec:
    """The network on the builder: the chosen preset unless the user loaded their own."""
    if _SPEC not in st.session_state:
        st.session_state[_SPEC] = PRESETS[preset_key()].spec()
    return st.session_state[_SPEC]


def set_spec(spec: NetSpec, preset: str | None = None) -> None:
    st.session_state[_SPEC] = spec
    if preset is not None:
        st.session_state[_PRESET] = preset
