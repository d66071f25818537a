"""The Inside page's overfitting tab: start the same net on 100, 1,000 and all training
images (each run: without and with dropout), as ordinary runs, and show their training and
validation curves with the gap read from the runs themselves. `core.overfitting` plans."""

from __future__ import annotations

import streamlit as st

from app import inside_figures as fig
from app import inside_run as run
from app import inside_tables as tables
from app import services, state
from app.choices import dataset_title, status_word
from app.i18n import _, fill
from core.experiments import RACE_DATA, RACES, data_request, race_pair
from core.overfitting import DEFAULT_STEPS, WEIGHT_DECAY, gap, is_overfitting, plan


def overfit_tab(mgr, owner: str) -> None:
    st.caption(
        _(
            "The same net on 100, 1,000 and all training images, the same number of steps: "
            "the fewer the images, the wider the gap between training and validation "
            "accuracy. Each run trains the net without and with dropout; weight decay is a "
            "setting."
        )
    )
    c = st.columns(4)
    label = c[0].selectbox(
        _("Net"), list(RACES)[:3], format_func=_, key=state.inside_key(state.INSIDE_OVERFIT, "net")
    )
    data = c[1].selectbox(
        _("Data"),
        RACE_DATA,
        format_func=dataset_title,
        key=state.inside_key(state.INSIDE_OVERFIT, "data"),
    )
    steps = c[2].number_input(
        _("Steps per run"),
        10,
        100_000,
        DEFAULT_STEPS,
        step=50,
        key=state.inside_key(state.INSIDE_OVERFIT, "steps"),
    )
    decay = c[3].toggle(
        fill("Weight decay {decay:g}", decay=WEIGHT_DECAY),
        key=state.inside_key(state.INSIDE_OVERFIT, "wd"),
    )
    if st.button(
        _("Start the three runs"),
        type="primary",
        icon=":material/play_arrow:",
        key=state.inside_key(state.INSIDE_OVERFIT, "go"),
    ):
        _start(owner, label, data, int(steps), WEIGHT_DECAY if decay else 0.0)
    _show(mgr, owner)


def _start(owner: str, label: str, data: str, steps: int, weight_decay: float) -> None:
    residual = race_pair(label)[1]
    for exp in plan(residual, data_request(data), steps=steps, weight_decay=weight_decay):
        started = services.submit(owner, exp.name, exp.specs, exp.data, exp.config)
        if started.error:
            st.error(
                _("Could not start “{name}”: {error}").format(name=exp.name, error=started.error),
                icon=":material/error:",
            )
            return
    st.success(_("Started: follow them here, or on the Runs page."), icon=":material/play_arrow:")


def _show(mgr, owner: str) -> None:
    runs = sorted((i for i in mgr.list(owner) if is_overfitting(i.name)), key=lambda i: i.created)
    if not runs:
        st.info(_("No overfitting runs in this browser yet."))
        return
    latest = {i.name: i for i in runs}  # a name started again: its newest run
    curves = {}
    for name, info in latest.items():
        logs = mgr.logs(info.id, owner)
        label = f"{name.split(': ', 1)[1]} · {status_word(info.status)}"
        curves[label] = {arm: _with_gap(log.snapshot()) for arm, log in logs.items()}
    run.chart(fig.gap_figure(curves), "in_of_gap", "overfitting_gap", tables.gap_csv(curves))
    if st.button(
        _("Refresh"),
        icon=":material/refresh:",
        key=state.inside_key(state.INSIDE_OVERFIT, "refresh"),
    ):
        st.rerun()


def _with_gap(snapshot):
    return snapshot, gap(snapshot)
