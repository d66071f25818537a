"""Runs: this browser's runs (trained here, stored, imported) with status, dataset, steps,
best validation accuracy and date; filter, open in Train, Explain or Compare, resume,
delete, export, share and import."""

import streamlit as st

from app import exports, lesson_chrome, live, runs_actions, runs_table, services, state
from app.choices import status_word
from app.i18n import _, tr
from app.markup import plain
from app.runs_upload import import_section
from core.jobs import ACTIVE

lesson_chrome.language()  # the URL's language, also when this page runs alone
st.title(_("Your runs"))
owner = state.owner()
mgr = services.job_manager()
store = services.store()
runs_actions.saving_note(store)
import_section(store, owner)
rows = runs_table.gather(mgr, store, owner)
runs_actions.quota_note(store, owner, rows)
if not rows:
    st.info(_("No runs yet in this browser. Start one on the Train or Compare page."))
    st.stop()
by_id = {r.id: r for r in rows}
runs_actions.confirm_delete(mgr, store, owner, by_id)

status = st.selectbox(
    _("Show"), runs_table.statuses(rows), format_func=status_word, key=state.RUNS_FILTER
)
shown = runs_table.only(rows, status)
st.dataframe(runs_table.table(shown), hide_index=True, width="stretch")
runs_actions.overlay(rows)
if not shown:
    st.stop()
names = {r.id: r.name for r in shown}
chosen = st.selectbox(
    _("Open run"), list(names), format_func=lambda r: f"{r} · {names[r]}", key=state.RUNS_OPEN
)
row = by_id[chosen]
if row.message:
    st.caption(plain(tr(row.message)))
runs_actions.actions(mgr, owner, row)
runs_actions.export_and_share(store, owner, row)


def _arm_downloads(logs: dict) -> None:
    """Each network's tables (CSV zip) and spec (JSON), one row per net."""
    for arm, log in logs.items():
        stem = f"{exports.file_stem(chosen)}_{exports.file_stem(arm)}"
        cols = st.columns(2)
        cols[0].download_button(
            _("{arm}: tables (zip of steps, evaluations, events CSV)").format(arm=plain(arm)),
            exports.deferred_zip(chosen, arm, log),
            file_name=f"{stem}.zip",
            mime="application/zip",
            key=f"zip_{chosen}_{arm}",
        )
        cols[1].download_button(
            _("{arm}: network (spec JSON)").format(arm=plain(arm)),
            exports.spec_json(log),
            file_name=f"{stem}.json",
            mime="application/json",
            key=f"spec_{chosen}_{arm}",
        )


with st.expander(_("Training settings")):
    st.code(row.config_json, language="json")
if row.managed:
    _arm_downloads(mgr.logs(chosen, owner))
    live.run_panel(chosen, key="runs", editable=row.status in ACTIVE)
else:  # a stored run the backend does not list: its charts from the store
    live.charts({arm: store.snapshot(chosen, arm) for arm in row.arms}, key="runs_stored")
