"""The live view of one run: status, progress with ETA or queue position, controls beside
the charts, and charts polled from immutable snapshots in fragments (no full-page rerun
per tick): the status line every second, the charts every few seconds, since building
and drawing them costs the training CPU time (bench/app_vs_bench.py). A run that is not
moving (paused, finished, stopped, failed) is not polled, and a poll that finds no new
step redraws the charts it already built."""

from __future__ import annotations

import time

import streamlit as st

from app import figures, services, state
from app.choices import status_word
from app.i18n import _, fill, number, tr
from app.live_figures import HEAT_POINTS, MAX_POINTS, NAMES, LiveFigures
from app.markup import plain
from core.experiments import training_seconds
from core.jobs import ACTIVE, PAUSED, QUEUED, RUNNING, Command, JobError, JobInfo

# Polling costs the training: a browser on the same 2-core machine redrawing the status
# every second took 10% of a core, and four charts every 10 s another 15% (from the
# run's share; bench/app_vs_bench.py). Multi-net runs are polled less often.
REFRESH_S = 1.0  # the status line of a one-net run (progress, ETA, pace); x arms
CHART_REFRESH_S = 5.0  # the charts of a one-net run; x arms
MOVING = (QUEUED, RUNNING)  # what can change without a click on this page
RESUME_WAIT_S = 3.0  # a resumed run leaves "paused" within its worker's 0.2 s poll


def refresh_every(info: JobInfo) -> float | None:
    """Seconds between polls of a run's status: none while nothing can change by itself."""
    return REFRESH_S * max(1, len(info.arms)) if info.status in MOVING else None


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return _("estimating…")
    seconds = int(seconds)
    if seconds >= 60:
        return _("{minutes} min {seconds:02d} s").format(
            minutes=seconds // 60, seconds=seconds % 60
        )
    return _("{seconds} s").format(seconds=seconds)


def pace(info: JobInfo, seconds: float) -> str:
    """The run's own clock: seconds a step while it trains, its training time once it
    stopped (measured on this server, pauses excluded), so no time on the page is a guess."""
    if info.step == 0 or seconds <= 0:
        return ""
    if info.status == RUNNING:
        return fill(" · {per_step:.2g} s a step here", per_step=seconds / info.step)
    took = _eta(seconds) if seconds >= 60 else fill("{seconds:.1f} s", seconds=seconds)
    return fill(
        " · {took} of training ({per_step:.2g} s a step)", took=took, per_step=seconds / info.step
    )


def status_line(info: JobInfo, seconds: float = 0.0) -> None:
    """Status, progress bar with ETA, pace and device, queue position, and the end message.
    The run's name is escaped (`literal`): a name is never read as Markdown.

    Args:
        seconds: the run's training time so far (core.experiments.training_seconds).
    """
    name = plain(info.name)
    if info.status == QUEUED:
        st.info(
            _(
                "{name} is waiting: number {position} in the queue. It starts by "
                "itself when the runs ahead of it finish."
            ).format(name=name, position=info.queue_position),
            icon=":material/hourglass_top:",
        )
        return
    label = _("{name}: {status} · step {step} of {total}").format(
        name=name,
        status=status_word(info.status),
        step=number(info.step),
        total=number(info.total_steps),
    )
    if info.status == RUNNING:
        label += _(" · ETA {eta} · {speed} images/s").format(
            eta=_eta(info.eta_seconds), speed=number(info.images_per_s)
        )
    label += pace(info, seconds)
    if info.device:
        label += _(" · on {device}").format(device=tr(info.device))
    st.progress(min(info.progress, 1.0), text=label)
    if info.not_saved:  # the disk refused the worker's last write: it trains on, in memory
        st.warning(tr(info.not_saved), icon=":material/save:")
    if info.status in ("failed", "diverged"):
        st.error(
            _("The run ended early: {message}").format(message=tr(info.message)),
            icon=":material/error:",
        )
    elif info.status == "stopped":
        st.warning(
            _("Stopped at step {step}. Everything recorded so far is kept.").format(
                step=number(info.step)
            )
        )
    elif info.status == "finished":
        st.success(_("Finished. Open it again any time from the Runs page."))


def _wait_resumed(job_id: str, owner: str) -> None:
    """Until the worker has taken the resume (at most a few seconds), so the page that
    reruns next sees a moving run and polls it again."""
    mgr = services.job_manager()
    deadline = time.monotonic() + RESUME_WAIT_S
    while time.monotonic() < deadline and mgr.info(job_id, owner).status == PAUSED:
        time.sleep(0.05)


def controls(info: JobInfo, owner: str, cols) -> None:
    """Pause or resume, and stop, in the two columns `cols`."""
    mgr = services.job_manager()
    try:
        if info.status == PAUSED:
            if cols[0].button(_("Resume"), icon=":material/play_arrow:", key=f"resume_{info.id}"):
                mgr.send(info.id, owner, Command("resume"))
                _wait_resumed(info.id, owner)
                st.rerun(scope="app")  # polling starts again
        elif info.status in ACTIVE and cols[0].button(
            _("Pause"),
            icon=":material/pause:",
            key=f"pause_{info.id}",
            disabled=info.status == QUEUED,
        ):
            mgr.send(info.id, owner, Command("pause"))
        if info.status in ACTIVE and cols[1].button(
            _("Stop"), icon=":material/stop:", key=f"stop_{info.id}"
        ):
            mgr.cancel(info.id, owner)
    except JobError as e:  # the run ended between the poll and the click
        st.warning(tr(e))


def learning_rate(info: JobInfo, owner: str, cols) -> None:
    """A new learning rate for every arm from the next step on, in the two columns `cols`."""
    lr = cols[0].number_input(
        _("New learning rate"),
        value=None,
        min_value=1e-6,
        max_value=10.0,
        format="%g",
        placeholder=fill("new lr (now {lr:g})", lr=info.config.lr),
        label_visibility="collapsed",
        key=f"lr_{info.id}",
    )
    if cols[1].button(_("Apply"), key=f"lr_apply_{info.id}", disabled=lr is None):
        try:
            services.job_manager().send(info.id, owner, Command("lr", value=float(lr)))
        except JobError as e:
            st.warning(tr(e))


def _send_skip(job: str, owner: str, arm: str, block: int, key: str) -> None:
    try:
        command = Command("skip", block=block, on=state.toggled(key), arm=arm)
        services.job_manager().send(job, owner, command)
    except JobError as e:
        state.set_live_error(tr(e))


def skip_switches(info: JobInfo, owner: str, *, per_row: int = 5) -> None:
    """A toggle per residual block of each arm, live.

    Each toggle's key includes the block's live state (`state.skip_key`): when the run
    applies a switch, a fresh toggle shows the new state. Nothing writes a toggle's state
    from the server, so a click can never race a refresh and be undone.
    """
    for arm, skips in info.skips.items():
        if not skips:
            continue
        blocks = sorted(skips.items())
        for first in range(0, len(blocks), per_row):  # the arm's name, then its toggles
            cols = st.columns([2] + [1] * per_row, vertical_alignment="center")
            if first == 0:
                cols[0].caption(
                    _("Skips of {arm} (live, from the next step):").format(arm=plain(arm))
                )
            row = blocks[first : first + per_row]
            for col, (block, on) in zip(cols[1 : 1 + len(row)], row, strict=True):
                key = state.skip_key(info.id, arm, block, on)
                col.toggle(
                    _("block {block}").format(block=block),
                    value=on,
                    key=key,
                    on_change=_send_skip,
                    args=(info.id, owner, arm, block, key),
                    disabled=info.status not in ACTIVE,
                )
    error = state.pop_live_error()
    if error:
        st.warning(error)


def _live_figures(key: str) -> LiveFigures:
    """The panel's figure cache, one per panel and browser session."""
    cache = state.drawn_charts(key)
    if cache is None:
        cache = LiveFigures()
        state.set_drawn_charts(key, cache)
    return cache


def charts(
    snapshots: dict, key: str, *, log_y: bool = False, info: JobInfo | None = None, logs=None
):
    """Loss and gradient norm against depth first (the two a demo needs), then accuracy
    and the depth x step heatmap. With `info` and the run's `logs`, `snapshots` are chart
    snapshots and each figure is rebuilt only when its data changed (app.live_figures)."""
    arms = list(snapshots)
    heat_arm = arms[0]
    if len(arms) > 1:
        heat_arm = st.selectbox(_("Heatmap of"), arms, key=f"{key}_heat_arm")
    if info is not None and logs is not None:
        heat = (heat_arm, lambda: logs[heat_arm].chart_snapshot(HEAT_POINTS))
        figs = _live_figures(key).figures(info.id, snapshots, heat, log_y=log_y)
    else:
        figs = [
            figures.curves_figure(snapshots, "loss", log_y=log_y, max_points=MAX_POINTS),
            figures.grad_depth_figure(snapshots),
            figures.curves_figure(snapshots, "accuracy", max_points=MAX_POINTS),
            figures.grad_heatmap(snapshots[heat_arm], max_points=HEAT_POINTS),
        ]
    for row in (0, 2):
        cols = st.columns(2)
        for col, fig, name in zip(cols, figs[row : row + 2], NAMES[row : row + 2], strict=True):
            col.plotly_chart(fig, key=f"{key}_{name}", width="stretch")


def _controls(info: JobInfo, owner: str, key: str, editable: bool) -> bool:
    """The live controls in two short rows directly above the charts (buttons, then the
    skip toggles), so a live-skip demo needs no scrolling on a projector; not polled (a
    click reruns the page). Returns the reader's log-scale choice."""
    if editable and info.active:
        row = st.columns([1, 1, 2, 1, 2], vertical_alignment="center")
        controls(info, owner, row[0:2])
        learning_rate(info, owner, row[2:4])
        log_y = row[4].toggle(_("Log scale for the loss"), key=state.log_scale_key(key))
        if info.skips:
            skip_switches(info, owner)
        return log_y
    return st.toggle(_("Log scale for the loss"), key=state.log_scale_key(key))


def controls_of(info: JobInfo) -> tuple:
    """What the (unpolled) controls are drawn from: the status, and which blocks have a
    skip toggle (known once the run has built its nets, which may be after it started)."""
    return info.status, tuple((arm, tuple(sorted(skips))) for arm, skips in info.skips.items())


def chart_every(info: JobInfo) -> float | None:
    """Seconds between redraws of a run's charts: slower than the status line, and slower
    for more arms (each arm's steps take longer, and its charts cost more to build here and
    to draw in the browser), so drawing takes little from training."""
    if info.status not in MOVING:
        return None
    return CHART_REFRESH_S * max(1, len(info.arms))


def run_panel(job_id: str, *, key: str, editable: bool = True, verdict=None) -> None:
    """Everything about one run: the status line polled once a second while the run can
    move by itself, the controls, and the charts polled every few seconds (`chart_every`).

    Args:
        verdict: (run name, snapshots) -> what the run shows so far, or None
            (core.experiments.verdict); shown under the status line.
    """
    owner = state.owner()
    mgr = services.job_manager()
    try:
        first = mgr.info(job_id, owner)
    except JobError as e:
        st.warning(_("{error}. It may have been deleted.").format(error=tr(e)))
        return

    @st.fragment(run_every=refresh_every(first))
    def status() -> None:
        try:
            info = mgr.info(job_id, owner)
            logs = mgr.logs(job_id, owner)
        except JobError as e:
            st.warning(tr(e))
            return
        if controls_of(info) != controls_of(first):  # the controls change: draw them anew
            st.rerun(scope="app")
        snapshots = {arm: log.chart_snapshot(MAX_POINTS) for arm, log in logs.items()}
        status_line(info, training_seconds(snapshots))
        said = verdict(info.name, snapshots) if verdict else None
        if said:
            when = (
                _("Measured")
                if info.status == "finished"
                else _("So far (step {step})").format(step=number(info.step))
            )
            st.markdown(f"**{when}:** {tr(said)}")

    status()
    log_y = _controls(first, owner, key, editable)

    @st.fragment(run_every=chart_every(first))
    def drawn() -> None:
        try:
            info = mgr.info(job_id, owner)
            logs = mgr.logs(job_id, owner)
        except JobError:
            return  # the status line above says why
        snapshots = {arm: log.chart_snapshot(MAX_POINTS) for arm, log in logs.items()}
        if snapshots:
            charts(snapshots, key, log_y=log_y, info=info, logs=logs)

    drawn()
