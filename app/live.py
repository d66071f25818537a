"""The live view of one run: status, progress with ETA or queue position, controls, and
charts polled from immutable snapshots in a fragment (no full-page rerun per tick)."""

from __future__ import annotations

import streamlit as st

from app import figures, services, state
from core.jobs import ACTIVE, PAUSED, QUEUED, Command, JobError, JobInfo

REFRESH_S = 1.0
MAX_POINTS = 300


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "estimating…"
    seconds = int(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def status_line(info: JobInfo) -> None:
    """Status, progress bar with ETA, queue position, device, and the end message."""
    if info.status == QUEUED:
        st.info(
            f"**{info.name}** is waiting: number {info.queue_position} in the queue. It starts "
            "by itself when the runs ahead of it finish.",
            icon=":material/hourglass_top:",
        )
        return
    label = f"{info.name}: {info.status} · step {info.step:,} of {info.total_steps:,}"
    if info.status in ACTIVE:
        label += f" · ETA {_eta(info.eta_seconds)} · {info.images_per_s:,.0f} images/s"
    st.progress(min(info.progress, 1.0), text=label)
    if info.device:
        st.caption(f"{'Training' if info.status in ACTIVE else 'Trained'} on {info.device}.")
    if info.status in ("failed", "diverged"):
        st.error(f"The run ended early: {info.message}", icon=":material/error:")
    elif info.status == "stopped":
        st.warning(f"Stopped at step {info.step:,}. Everything recorded so far is kept.")
    elif info.status == "finished":
        st.success("Finished. Open it again any time from the Runs page.")


def controls(info: JobInfo, owner: str) -> None:
    mgr = services.job_manager()
    cols = st.columns([1, 1, 3])
    try:
        if info.status == PAUSED:
            if cols[0].button("Resume", icon=":material/play_arrow:", key=f"resume_{info.id}"):
                mgr.send(info.id, owner, Command("resume"))
        elif info.status in ACTIVE and cols[0].button(
            "Pause", icon=":material/pause:", key=f"pause_{info.id}", disabled=info.status == QUEUED
        ):
            mgr.send(info.id, owner, Command("pause"))
        if info.status in ACTIVE and cols[1].button(
            "Stop", icon=":material/stop:", key=f"stop_{info.id}"
        ):
            mgr.cancel(info.id, owner)
    except JobError as e:  # the run ended between the poll and the click
        st.warning(str(e))


def skip_switches(info: JobInfo, owner: str) -> None:
    """A toggle per residual block of each arm, live; and the learning rate.

    Each toggle's key includes the block's live state: when the run applies a switch,
    a fresh toggle shows the new state. Nothing writes a toggle's state from the server,
    so a click can never race a refresh and be undone.
    """
    mgr = services.job_manager()

    def send(arm: str, block: int, key: str) -> None:
        try:
            mgr.send(
                info.id, owner, Command("skip", block=block, on=st.session_state[key], arm=arm)
            )
        except JobError as e:
            st.session_state["live_error"] = str(e)

    for arm, skips in info.skips.items():
        if not skips:
            continue
        st.markdown(f"**Skip connections of {arm}** (take effect at the next step)")
        cols = st.columns(min(len(skips), 8))
        for n, (block, on) in enumerate(sorted(skips.items())):
            key = f"skip_{info.id}_{arm}_{block}_{on}"
            cols[n % len(cols)].toggle(
                f"block {block}",
                value=on,
                key=key,
                on_change=send,
                args=(arm, block, key),
                disabled=info.status not in ACTIVE,
            )
    lr_cols = st.columns([2, 1, 3])
    lr = lr_cols[0].number_input(
        "New learning rate",
        value=None,
        min_value=1e-6,
        max_value=10.0,
        format="%g",
        placeholder=f"now {info.config.lr:g} (base)",
        key=f"lr_{info.id}",
    )
    if lr_cols[1].button("Apply", key=f"lr_apply_{info.id}", disabled=lr is None):
        try:
            mgr.send(info.id, owner, Command("lr", value=float(lr)))
        except JobError as e:
            st.warning(str(e))
    if "live_error" in st.session_state:
        st.warning(st.session_state.pop("live_error"))


def charts(snapshots: dict, key: str, *, log_y: bool = False) -> None:
    """Loss and accuracy, gradient norm against depth, and the depth x step heatmap."""
    a, b = st.columns(2)
    a.plotly_chart(
        figures.curves_figure(snapshots, "loss", log_y=log_y, max_points=MAX_POINTS),
        key=f"{key}_loss",
        width="stretch",
    )
    b.plotly_chart(
        figures.curves_figure(snapshots, "accuracy", max_points=MAX_POINTS),
        key=f"{key}_acc",
        width="stretch",
    )
    c, d = st.columns(2)
    c.plotly_chart(figures.grad_depth_figure(snapshots), key=f"{key}_depth", width="stretch")
    arm = (
        next(iter(snapshots))
        if len(snapshots) == 1
        else d.selectbox("Heatmap of", list(snapshots), key=f"{key}_heat_arm")
    )
    d.plotly_chart(
        figures.grad_heatmap(snapshots[arm], max_points=200), key=f"{key}_heat", width="stretch"
    )


def run_panel(job_id: str, *, key: str, editable: bool = True) -> None:
    """Everything about one run; polls once a second while the run is active."""
    owner = state.owner()
    mgr = services.job_manager()
    try:
        first = mgr.info(job_id, owner)
    except JobError as e:
        st.warning(f"{e}. It may have been deleted.")
        return

    @st.fragment(run_every=REFRESH_S if first.active else None)
    def panel() -> None:
        try:
            info = mgr.info(job_id, owner)
            logs = mgr.logs(job_id, owner)
        except JobError as e:
            st.warning(str(e))
            return
        if info.active != first.active:  # started or ended: redraw the page, stop polling
            st.rerun(scope="app")
        status_line(info)
        if editable:
            controls(info, owner)
        snapshots = {arm: log.snapshot() for arm, log in logs.items()}
        if snapshots:
            log_y = st.toggle("Log scale for the loss", key=f"{key}_logy")
            charts(snapshots, key, log_y=log_y)
        if editable and info.active and info.skips:
            skip_switches(info, owner)

    panel()
