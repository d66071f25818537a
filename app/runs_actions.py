"""What the Runs page does with a run: open it on another page, resume, delete (after a
confirmation), export and share; and the notes about the store (not saving, full)."""

from __future__ import annotations

import re
import sqlite3
from urllib.parse import urlencode, urlsplit, urlunsplit

import streamlit as st
from streamlit.errors import StreamlitAPIException

from app import choices, state
from app.exports import file_stem
from app.i18n import N_, _, number, tr
from app.markup import plain
from app.runs_table import RunRow, oldest_ended
from core.errors import ExplainedError
from core.export import export_run
from core.jobs import CANCELLED, FAILED, JobError
from core.run import INTERRUPTED
from core.store import RunStore, StoreError, StoreFullError

NOT_STORED = N_(
    "{name} is not in the run store: this server's training backend keeps it in memory, "
    "so it cannot be exported as one zip or shared by a link. Its tables and network can "
    "be downloaded below."
)
LINK_INVALID = N_("This link is not valid: ask whoever shared it for a new one.")
NOT_LISTED = N_("The training backend does not list this run (imported, or stored earlier).")


def saving_note(store: RunStore) -> None:
    """Say when runs are not being saved (or the database was moved aside)."""
    message = plain(store.message)  # it names paths: shown as they are
    if not store.saving:
        st.warning(_("Runs are {message}.").format(message=message), icon=":material/cloud_off:")
    elif message:
        st.info(message[0].upper() + message[1:] + ".")


def quota_note(store: RunStore, owner: str, rows: list[RunRow]) -> None:
    """Say when the owner is at the cap on stored runs or bytes, and offer to delete the
    oldest runs."""
    try:
        store.check_quota(owner)
    except StoreFullError as e:
        st.warning(tr(e), icon=":material/inventory_2:")
        old = oldest_ended([r for r in rows if r.stored])  # what counts towards the cap
        label = _("Delete the {n} oldest runs…").format(n=number(len(old)))
        if old and st.button(label, key="runs_delete_old"):
            state.ask_delete([r.id for r in old])
            st.rerun()


def _delete(mgr, store: RunStore, owner: str, row: RunRow) -> None:
    if row.managed:
        mgr.delete(row.id, owner)
    if row.stored:
        try:
            store.delete(row.id, owner)
        except StoreError:
            if not row.managed:  # else the backend deleted it from the store already
                raise


def confirm_delete(mgr, store: RunStore, owner: str, by_id: dict[str, RunRow]) -> None:
    """The confirmation for the runs waiting to be deleted, and the deleting."""
    pending = [by_id[r] for r in state.delete_pending() if r in by_id]
    if not pending:
        return
    names = ", ".join(plain(r.name) for r in pending)
    if len(pending) == 1:
        question = _("Delete this run for good: {names}?").format(names=names)
    else:
        question = _("Delete these {n} runs for good: {names}?").format(n=len(pending), names=names)
    st.warning(
        question + " " + _("Its charts, settings and weights go too; this cannot be undone."),
        icon=":material/delete_forever:",
    )
    yes, no = st.columns(2)
    if no.button(_("Keep"), key="runs_delete_no"):
        state.ask_delete([])
        st.rerun()
    if yes.button(_("Delete for good"), key="runs_delete_yes", type="primary"):
        errors = []
        for row in pending:
            try:
                _delete(mgr, store, owner, row)
            except (JobError, StoreError) as e:
                errors.append(tr(e))
        state.ask_delete([])
        for error in errors:
            st.error(error, icon=":material/error:")
        if not errors:
            st.rerun()


def _go(page: str, title: str) -> None:
    try:
        st.switch_page(page)
    except StreamlitAPIException:  # this page runs on its own (no navigation): say where
        st.info(_("Open the {title} page: the run is chosen there.").format(title=_(title)))


def actions(mgr, owner: str, row: RunRow) -> None:
    """Open in Train or Explain, Resume, Delete: one row of buttons."""
    cols = st.columns(4)
    if cols[0].button(
        _("Open in Train"),
        icon=":material/show_chart:",
        disabled=not row.managed,
        help=_(NOT_LISTED)
        if not row.managed
        else _("Its charts; the controls only while it runs."),
        key="runs_train",
    ):
        state.open_in_train(row.id)
        _go("views/train.py", "Train")
    untrained = row.status in (CANCELLED, FAILED) or row.step == 0
    if cols[1].button(
        _("Open in Explain"),
        icon=":material/visibility:",
        disabled=not row.managed or untrained,
        help=_(NOT_LISTED) if not row.managed else _("Attribution maps of its networks."),
        key="runs_explain",
    ):
        state.open_in_explain(row.id)
        _go("views/explain.py", "Explain")
    if cols[2].button(
        _("Resume"),
        icon=":material/restart_alt:",
        disabled=row.active,
        type="primary" if row.status == INTERRUPTED else "secondary",
        help=_("Continue a run that a restart interrupted, from its last checkpoint."),
        key="runs_resume",
    ):
        try:
            mgr.resume(row.id, owner)
            st.rerun()
        except JobError as e:  # the backend says why not
            st.error(tr(e), icon=":material/error:")
    if cols[3].button(
        _("Delete…"),
        icon=":material/delete:",
        disabled=row.active,
        help=_("Stop it first.") if row.active else _("Asks before it deletes."),
        key="runs_delete",
    ):
        state.ask_delete([row.id])
        st.rerun()


def share_url(run_id: str, token: str, page_url: str | None) -> str:
    """The link to the run's read-only view: the app's root (this page's URL without its
    `/runs`, so no page is named that a viewer's app does not have) with `?run=&view=`;
    relative when the page's URL is not known."""
    query = urlencode({state.SHARED_RUN_PARAM: run_id, state.SHARED_TOKEN_PARAM: token})
    if not page_url:
        return f"?{query}"
    parts = urlsplit(page_url)
    root = re.sub(r"/?runs/?$", "", parts.path).rstrip("/") + "/"
    return urlunsplit((parts.scheme, parts.netloc, root, query, ""))


def export_and_share(store: RunStore, owner: str, row: RunRow) -> None:
    """Export the run as one zip (core.export), and a read-only share link."""
    if not row.stored:
        st.caption(_(NOT_STORED).format(name=plain(row.name)))
        return
    cols = st.columns(2)
    if cols[0].button(_("Export as zip"), icon=":material/archive:", key="runs_export_make"):
        try:
            with st.spinner(_("Packing its curves and weights…")):
                state.set_exported(row.id, export_run(store, row.id))
        except (ExplainedError, sqlite3.Error, OSError) as e:
            st.error(
                _("{name} could not be exported: {error}").format(name=row.name, error=tr(e)),
                icon=":material/error:",
            )
    data = state.exported(row.id)
    if data is not None:
        cols[0].download_button(
            _("Download {file}").format(file=f"{file_stem(row.name)}.zip"),
            data,
            file_name=f"{file_stem(row.name)}.zip",
            mime="application/zip",
            icon=":material/download:",
            key="runs_export_download",
        )
    if cols[1].button(_("Share link (read-only)"), icon=":material/link:", key="runs_share"):
        try:
            link = share_url(row.id, store.share_token(row.id, owner), st.context.url)
        except (StoreError, sqlite3.Error) as e:
            st.error(
                _("No link for {name}: {error}").format(name=row.name, error=tr(e)),
                icon=":material/error:",
            )
        else:
            cols[1].code(link, language=None)
            cols[1].caption(
                _("Anyone with it sees the charts and settings, and can change nothing.")
            )


def overlay(rows: list[RunRow]) -> None:
    """Pick two or more ended runs and overlay them on the Compare page."""
    ready = [r for r in rows if r.managed and not r.active and r.step > 0]
    if len(ready) < 2:
        return
    names = {r.id: r.name for r in ready}
    picked = st.multiselect(
        _("Overlay in Compare"),
        list(names),
        format_func=lambda r: f"{r} · {names[r]}",
        placeholder=_("Choose two or more runs"),
        key=state.RUNS_OVERLAY,
    )
    if st.button(_("Overlay"), icon=":material/compare_arrows:", disabled=len(picked) < 2):
        arms = {r.id: r.arms for r in ready}
        pairs = [(r, arm) for r in picked for arm in arms[r]]
        state.open_in_overlay(pairs, _(choices.OVERLAY_TAB))
        _go("views/compare.py", "Compare")
