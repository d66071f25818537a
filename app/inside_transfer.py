"""The Inside page's transfer tab: start a new run from one of a stored run's networks on
another dataset (train the new head only, or fine-tune every layer), raced against the
same net from scratch on the same batches (`core.transfer.transfer_race`), and follow the
newest such run live. The network is copied only when the button is pressed."""

from __future__ import annotations

import streamlit as st

from app import live, services, state
from app.choices import DATASET_NAMES, SIZES, dataset_title, short_title
from app.i18n import N_, _, tr
from core import limits
from core.data import DataRequest
from core.experiments import SHAPES_IMAGES, settings
from core.jobs import JobInfo
from core.transfer import PREFIX, is_transfer, transfer_race, verdict

MODE_LABELS = {
    "head": N_("Train the new head only (every other layer frozen)"),
    "finetune": N_("Fine-tune every layer"),
}
CAPS = limits.INSIDE_LIMITS


def transfer_tab(mgr, owner: str, info: JobInfo) -> None:
    st.caption(
        _(
            "Start a new run from a trained network on another dataset, raced against the "
            "same network trained from scratch on the same batches: the gap between the two "
            "curves is what the trained weights are worth. A new head is made when the "
            "number of classes differs."
        )
    )
    c = st.columns(2)
    arm = c[0].selectbox(
        _("Start from the network"),
        list(info.arms),
        key=state.inside_key(state.INSIDE_TRANSFER, "arm", info.id),
    )
    names = [n for n in DATASET_NAMES if n != "upload" or state.upload_digest()]
    name = c[1].selectbox(
        _("New data"),
        names,
        format_func=dataset_title,
        key=state.inside_key(state.INSIDE_TRANSFER, "data"),
    )
    c = st.columns(3)
    size = c[0].selectbox(
        _("Image side (px)"), SIZES[name], key=state.inside_key(state.INSIDE_TRANSFER, "size", name)
    )
    modes = list(MODE_LABELS)
    mode = c[1].radio(
        _("What trains"),
        modes,
        format_func=lambda m: _(MODE_LABELS[m]),
        key=state.inside_key(state.INSIDE_TRANSFER, "mode"),
    )
    steps = c[2].number_input(
        _("Training steps per net"),
        10,
        CAPS.max_transfer_steps,
        CAPS.transfer_steps,
        step=50,
        key=state.inside_key(state.INSIDE_TRANSFER, "steps"),
    )
    if st.button(
        _("Start the transfer race"),
        type="primary",
        icon=":material/play_arrow:",
        key=state.inside_key(state.INSIDE_TRANSFER, "go"),
    ):
        _start(mgr, owner, info, arm, _request(name, int(size)), mode, int(steps))
    _follow(mgr, owner)


def _request(name: str, size: int) -> DataRequest | None:
    """The target data; None for an upload this browser has not made."""
    digest = state.upload_digest() if name == "upload" else None
    if name == "upload" and digest is None:
        return None
    return DataRequest(
        name=name, size=size, n=SHAPES_IMAGES if name == "shapes" else None, upload=digest
    )


def _start(mgr, owner, info: JobInfo, arm: str, request, mode: str, steps: int) -> None:
    """Copy the network, build the two arms and submit them as one run; say why not."""
    config = settings(steps, seed=info.config.seed)
    try:
        if request is None:
            raise ValueError(_("upload a zip of class folders first, on the Train page"))
        target = services.dataset(request)
        net, _data = mgr.copy_model(info.id, owner, arm)
        arms = transfer_race(net, net.current_spec(), target, mode, seed=config.seed)
    except ValueError as e:  # a refusal written for the user (TransferError, JobError, ...)
        st.error(_("Could not start the transfer: {e}").format(e=tr(e)), icon=":material/error:")
        return
    title = short_title(request.name)
    name = f"{PREFIX}{info.name} / {arm} → {title} ({mode})"
    started = services.submit(owner, name, arms, request, config)
    if started.error:
        st.error(
            _("Could not start the transfer: {e}").format(e=started.error),
            icon=":material/error:",
        )
        return
    st.success(_("Started: it trains below, and on the Runs page."), icon=":material/play_arrow:")


def _follow(mgr, owner: str) -> None:
    """The newest transfer race of this browser, live."""
    runs = [i for i in mgr.list(owner) if is_transfer(i.name)]
    if not runs:
        st.info(_("No transfer runs in this browser yet."))
        return
    newest = max(runs, key=lambda i: i.created)
    live.run_panel(newest.id, key="inside_transfer", verdict=verdict)
