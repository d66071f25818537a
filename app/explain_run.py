"""The Explain page's shared parts: which run and networks, the one place that copies a
run's networks (only when a computation starts), and computing under a progress bar with
a Cancel button. Drawing only; the computations are in core.attribution."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import streamlit as st
from torch import nn

from app import state
from app.i18n import _, fill, tr
from core.attribution import Cancelled, freeze
from core.data import TensorData
from core.errors import ExplainedError
from core.jobs import CANCELLED, DIVERGED, FAILED, PAUSED, QUEUED, RUNNING, JobError, JobInfo

log = logging.getLogger(__name__)


def choose_run(runs: list[JobInfo]) -> JobInfo | None:
    """The run to explain, newest first; None (after saying why) when it cannot be."""
    runs = sorted(
        (i for i in runs if i.status not in (CANCELLED, FAILED)),
        key=lambda i: i.created,
        reverse=True,
    )
    if not runs:
        st.info(
            _(
                "No runs yet in this browser. Train one on the Train or Compare page; once it has "
                "finished (or while it is paused), its networks can be explained here."
            )
        )
        return None
    by_id = {i.id: i for i in runs}
    job = st.selectbox(
        _("Run"),
        list(by_id),
        format_func=lambda r: f"{r} · {by_id[r].name} · {by_id[r].status}",
        key=state.EXPLAIN_RUN,
    )
    info = by_id[job]
    if info.status in (QUEUED, RUNNING):  # its weights change under our feet
        st.warning(
            _(
                "{name} is {status}: pause it or let it finish first, so its "
                "weights stay still while they are explained."
            ).format(name=info.name, status=info.status),
            icon=":material/pending:",
        )
        return None
    if info.status == PAUSED:
        st.caption(
            fill(
                "Paused at step {step:,}: the maps show the weights as they are now.",
                step=info.step,
            )
        )
    elif info.status == DIVERGED:
        st.warning(
            _("This run diverged: its weights may hold NaN or huge values, so maps may be blank.")
        )
    return info


def choose_arms(info: JobInfo) -> list[str]:
    """The networks to show side by side (every one, unless the user leaves some out)."""
    arms = list(info.arms)
    if len(arms) > 1:
        arms = st.multiselect(
            _("Networks, side by side"), arms, default=arms, key=f"ex_nets_{info.id}"
        )
        if not arms:
            st.info(_("Choose at least one network."))
    return arms


def load_networks(
    mgr, owner: str, job: str, arms: list[str]
) -> tuple[dict[str, nn.Module], TensorData]:
    """Frozen copies of the chosen networks, taking raw pixels (they normalise as the run
    did), and the run's data. The one place the page copies weights: call it when a
    computation starts, never on a plain rerun (copying holds the job manager's lock)."""
    copies = {arm: mgr.copy_model(job, owner, arm) for arm in arms}
    data = next(iter(copies.values()))[1]
    models = {arm: freeze(net, mean=data.mean, std=data.std) for arm, (net, _) in copies.items()}
    return models, data


def _eta(share: float, elapsed: float) -> str:
    if share < 0.02 or elapsed < 1.0:
        return ""
    left = round(elapsed * (1 - share) / share)
    return (
        f" · about {left // 60} min {left % 60:02d} s left" if left >= 60 else f" · {left} s left"
    )


def compute(what: str, key: str, work: Callable):
    """`work(progress)` under a progress bar with a Cancel button; its result, or None
    after showing why there is none.

    Cancelling: while this script runs, a click on any widget makes Streamlit stop it at
    its next `st.*` call, and the progress callback makes one between two passes. So the
    Cancel button needs no handler: clicking it ends the computation there. Streamlit does
    it by raising a RerunException, a BaseException that the except clauses below let
    through; nothing partial is stored, and the pending note tells the next run.
    """
    cancel_slot, bar_slot = st.empty(), st.empty()
    cancel_slot.button(_("Cancel"), icon=":material/cancel:", key=f"ex_cancel_{key}")
    bar = bar_slot.progress(0.0, text=_("Computing {what}…").format(what=what))
    start = time.monotonic()

    def progress(share: float, message: str) -> None:  # an st call: where a click stops us
        share = min(max(share, 0.0), 1.0)
        bar.progress(share, text=message + _eta(share, time.monotonic() - start))

    state.set_explain_pending(what)
    out = None
    try:
        out = work(progress)
    except Cancelled as e:
        st.warning(_("{e}; nothing was kept.").format(e=e))
    except (ExplainedError, JobError) as e:  # the message says what to change
        st.error(
            _("Could not compute {what}: {e}").format(what=what, e=tr(e)), icon=":material/error:"
        )
    except Exception as e:  # torch (out of memory, ...): say so, keep the server going
        log.exception("computing %s failed", what)
        st.error(
            _("Computing {what} failed: {name}: {e}").format(what=what, name=type(e).__name__, e=e),
            icon=":material/error:",
        )
    state.set_explain_pending(None)
    cancel_slot.empty()
    bar_slot.empty()
    return out
