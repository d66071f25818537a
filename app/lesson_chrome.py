"""What every page shares for a class: the reader's language and presenter mode.

Language: `?lang=de` / `?lang=en`, else the browser's (`st.context.locale`), else English;
the sidebar's selector writes its choice into the URL, so a reload or a shared link keeps
it. Presenter mode: `?present=1` (or the sidebar's toggle) loads the presenter section of
assets/theme.css (large type, no sidebar, no editing controls) and shows a lesson one
step at a time.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app import i18n, state
from app.i18n import LANGUAGES, _, current_language, pick_language, use_language
from app.state import LANG_SELECT, PRESENT_TOGGLE

THEME = Path(__file__).resolve().parents[1] / "assets" / "theme.css"
PRESENTER_MARK = "/* == presenter == */"  # theme.css: what follows is for presenter mode
LANG_PARAM, PRESENT_PARAM = "lang", "present"


def _from_request() -> str:
    """The URL's language, else the browser's, else English."""
    try:
        locale = st.context.locale
    except Exception:  # AppTest and old browsers: no locale
        locale = None
    try:
        query = st.query_params.get(LANG_PARAM)
    except Exception:  # outside a script run (a worker thread): no URL
        query = None
    return pick_language(query, locale)


def language() -> str:
    """Choose this run's language for `_()`; returns it. Cheap: every page may call it."""
    lang = _from_request()
    use_language(lang)
    return lang


# Fragment reruns (the live charts of every page) skip the entry script: `_()` asks here.
i18n.set_resolver(_from_request)


def presenting() -> bool:
    return st.query_params.get(PRESENT_PARAM) == "1"


def set_presenting(on: bool) -> None:
    if on:
        st.query_params[PRESENT_PARAM] = "1"
    elif PRESENT_PARAM in st.query_params:
        del st.query_params[PRESENT_PARAM]


def _language_changed() -> None:
    st.query_params[LANG_PARAM] = state.widget_value(LANG_SELECT)


def _present_changed() -> None:
    set_presenting(bool(state.widget_value(PRESENT_TOGGLE)))


def sidebar() -> None:
    """The language selector and the presenter toggle (hidden with the sidebar when
    presenting; the lesson page then offers a button to leave presenter mode)."""
    lang = current_language()
    state.set_widget_value(LANG_SELECT, lang)
    st.sidebar.radio(
        _("Language"),
        list(LANGUAGES),
        format_func=LANGUAGES.get,
        key=LANG_SELECT,
        horizontal=True,
        on_change=_language_changed,
    )
    state.set_widget_value(PRESENT_TOGGLE, presenting())
    st.sidebar.toggle(_("Presenter mode"), key=PRESENT_TOGGLE, on_change=_present_changed)


def theme_css(present: bool) -> str:
    """The sheet for this page: the presenter section only in presenter mode."""
    css = THEME.read_text(encoding="utf-8")
    base, _mark, presenter = css.partition(PRESENTER_MARK)
    return f"<style>{base + (presenter if present else '')}</style>"


def setup(*, controls: bool = True) -> tuple[str, bool]:
    """For the entry script, before navigation: language, theme, and (unless `controls`
    is off: a read-only shared run) the sidebar's controls."""
    lang = language()
    present = presenting()
    st.html(theme_css(present))
    if controls:
        sidebar()
    return lang, present
