"""Explain: Captum attribution maps of a run's networks, side by side on the same images and
one colour scale; Integrated Gradients' completeness; downloads; and two checks that the
maps can be trusted: localisation on Shapes masks, and Adebayo et al.'s sanity check.

A rerun copies nothing: the run's classes, shapes and block kinds come from `JobInfo`;
the networks are copied only when a button starts a computation."""

import streamlit as st

from app import services, state
from app.explain_checks import localisation_tab, sanity_tab
from app.explain_maps import maps_tab
from app.explain_run import choose_arms, choose_run
from app.i18n import _

st.title(_("Explain"))
owner = state.owner()
mgr = services.job_manager()
note = st.empty()  # always there, so the note does not shift the tabs (a shift resets them)
stopped = state.explain_pending()
if stopped:  # the script was stopped mid-computation: by Cancel, or by another click
    note.info(
        _("Stopped computing {stopped}; nothing of it was kept.").format(stopped=stopped),
        icon=":material/cancel:",
    )
    state.set_explain_pending(None)

info = choose_run(mgr.list(owner))
if info is None:
    st.stop()
arms = choose_arms(info)
if not arms:
    st.stop()

maps, localisation, sanity = st.tabs(
    [_("Attribution maps"), _("Localisation (Shapes)"), _("Sanity check")]
)
with maps:
    maps_tab(mgr, owner, info, arms)
with localisation:
    localisation_tab(mgr, owner, info, arms)
with sanity:
    sanity_tab(mgr, owner, info, arms)
