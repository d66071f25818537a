"""Inside: experiments on a trained run that show why residual nets train: the lesion
study, the loss landscape, the errors per class, overfitting on small data, and transfer
to another dataset raced against training from scratch.

A rerun copies nothing: the run's arms, specs and classes come from `JobInfo`; the
networks are copied only when a button starts a computation."""

import streamlit as st

from app import lesson_chrome, services, state
from app.explain_run import choose_arms, choose_run
from app.i18n import _
from app.inside_errors import errors_tab
from app.inside_landscape import landscape_tab
from app.inside_lesion import lesion_tab
from app.inside_overfit import overfit_tab
from app.inside_transfer import transfer_tab

lesson_chrome.language()  # the URL's language, also when this page runs alone
st.title(_("Inside"))
owner = state.owner()
mgr = services.job_manager()
note = st.empty()  # always there, so the note does not shift the tabs
stopped = state.explain_pending()
if stopped:  # the script was stopped mid-computation: by Cancel, or by another click
    note.info(
        _("Stopped computing {what}; nothing of it was kept.").format(what=stopped),
        icon=":material/cancel:",
    )
    state.set_explain_pending(None)

info = choose_run(mgr.list(owner))
arms = choose_arms(info) if info is not None else []
lesion, landscape, errors, overfit, transfer = st.tabs(
    [
        _("Lesion study"),
        _("Loss landscape"),
        _("Per-class errors"),
        _("Overfitting"),
        _("Transfer learning"),
    ]
)
if arms:
    with lesion:
        lesion_tab(mgr, owner, info, arms)
    with landscape:
        landscape_tab(mgr, owner, info, arms)
    with errors:
        errors_tab(mgr, owner, info, arms)
with overfit:
    overfit_tab(mgr, owner)
if info is not None:
    with transfer:
        transfer_tab(mgr, owner, info)
