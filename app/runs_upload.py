"""Import on the Runs page: a run zip exported by this app, checked as hostile input by
core.run_import; each refusal names the file inside the zip and what is wrong with it."""

from __future__ import annotations

import logging
import sqlite3

import streamlit as st

from app import state
from app.i18n import _, tr
from app.markup import plain
from core.errors import ExplainedError
from core.run_import import import_run
from core.store import RunStore

log = logging.getLogger(__name__)


def _import(store: RunStore, owner: str, name: str, data: bytes) -> tuple[bool, str]:
    """(True, run id) or (False, what to tell the user)."""
    try:
        return True, import_run(store, owner, data)
    except ExplainedError as e:  # RunImportError (the file and problem), StoreFullError
        return False, _("{name} was not imported: {error}").format(name=name, error=tr(e))
    except (sqlite3.Error, OSError) as e:
        return False, _("{name} could not be stored: {error}").format(name=name, error=e)
    except Exception as e:  # a bug in the checks must not take the page down
        log.exception("importing %s failed", name)
        return False, _("{name} could not be read ({error}); export the run again").format(
            name=name, error=type(e).__name__
        )


def import_section(store: RunStore, owner: str) -> None:
    """The uploader; each file is imported once (its outcome kept for the session)."""
    with st.expander(_("Import a run (a zip exported from ResNet Explorer)")):
        st.caption(
            _(
                "Its curves, settings and weights become a new run of yours. The zip is "
                "checked before anything is stored; its model.py is never run."
            )
        )
        zipped = st.file_uploader(_("Run zip"), type=["zip"], key=state.RUNS_IMPORT)
        if zipped is None:
            return
        outcome = state.imported(zipped.file_id)
        if outcome is None:
            with st.spinner(_("Checking {name}…").format(name=zipped.name)):
                outcome = _import(store, owner, zipped.name, zipped.getvalue())
            state.set_imported(zipped.file_id, outcome)
        ok, text = outcome
        if ok:
            st.success(
                _("Imported {name} as run {run}.").format(name=plain(zipped.name), run=text),
                icon=":material/done:",
            )
        else:
            st.error(plain(text), icon=":material/error:")
