"""One lesson, in four steps: the explanation, the question (a click predicts), the
experiment (one button; live charts while it runs), and the answer with the claims the
run showed and a way to explore it. On a normal page the steps follow each other down
the page; in presenter mode one step fills the screen, with Back and Next.

Its state lives in session_state under app/state.py's `LESSON_*` keys (the jobs of each
lesson's run, the reader's prediction, the presenter's step).
"""

from __future__ import annotations

import time

import streamlit as st

from app import lesson_charts, lesson_chrome, lesson_jobs, lesson_text, state
from app.i18n import LESSON_WORDS as W
from app.i18n import N_, _, current_language
from core.lesson_transfer import LABELS as TRANSFER_LABELS
from core.lesson_transfer import SCRATCH, TRANSFERRED
from core.lessons import Lesson

STEPS = ("explain", "predict", "run", "answer")
STEP_TITLES = {
    "explain": N_("The idea"),
    "predict": N_("Your prediction"),
    "run": N_("The experiment"),
    "answer": N_("The answer"),
}
REFRESH_S = 1.0


def jobs(lesson: Lesson) -> tuple[str, ...] | None:
    """The jobs of this lesson's run in this session; None before the run button."""
    return state.lesson_value(state.LESSON_JOBS, lesson.key)


def step(lesson: Lesson) -> int:
    return state.lesson_value(state.LESSON_STEP, lesson.key, 0)


def set_step(lesson: Lesson, index: int) -> None:
    state.set_lesson_value(state.LESSON_STEP, lesson.key, max(0, min(index, len(STEPS) - 1)))


def ran(lesson: Lesson) -> bool:
    return bool(state.lesson_value(state.LESSON_RAN, lesson.key))


def start_run(lesson: Lesson) -> None:
    """The run button: a train lesson's jobs go to the job manager; the others need none."""
    owner = state.owner()
    old = jobs(lesson)
    if old:
        lesson_jobs.stop(old, owner)
    if lesson.kind == "train":
        started = lesson_jobs.start(lesson, owner)
        if started.error:
            state.set_lesson_value(state.LESSON_RAN, lesson.key, False)
            st.error(started.error, icon=":material/error:")
            return
        state.set_lesson_value(state.LESSON_JOBS, lesson.key, started.jobs)
    state.set_lesson_value(state.LESSON_RAN, lesson.key, True)
    state.set_lesson_value(state.LESSON_TIMES, lesson.key, [time.time(), None])


def draw_explain(lesson: Lesson) -> None:
    st.markdown(lesson.text(current_language()).explanation)


def draw_predict(lesson: Lesson) -> None:
    text = lesson.text(current_language())
    st.markdown(f"**{text.question}**")
    st.pills(
        _(W["your_prediction"]),
        list(lesson.choices),
        format_func=text.choices.get,
        key=state.lesson_key(state.LESSON_PICK, lesson.key),
        label_visibility="collapsed",
    )


def run_button(lesson: Lesson, present: bool) -> None:
    """The one button that sets up and starts the experiment (in presenter mode it sits
    in the step bar, so a lesson runs from any step)."""
    label = _(W["run"]) if not ran(lesson) else _("Run it again")
    if st.button(label, icon=":material/play_arrow:", type="primary", key=f"run_{lesson.key}"):
        start_run(lesson)
        if present:
            set_step(lesson, STEPS.index("run"))
        st.rerun()


def draw_run(lesson: Lesson, present: bool) -> None:
    if not present:
        run_button(lesson, present)
    if ran(lesson):
        live(lesson, present)


def live(lesson: Lesson, present: bool) -> None:
    """The run's charts, polled once a second while a job is moving."""
    owner = state.owner()
    first = lesson_jobs.outcome(lesson, jobs(lesson) or (), owner)

    @st.fragment(run_every=REFRESH_S if first.running else None)
    def panel() -> None:
        lesson_chrome.language()  # a fragment's rerun skips the entry script that set it
        job_ids, problem = lesson_jobs.advance(lesson, jobs(lesson) or (), owner)
        state.set_lesson_value(state.LESSON_JOBS, lesson.key, job_ids)  # stage 2, once due
        if problem:
            st.warning(problem, icon=":material/error:")
        now = lesson_jobs.outcome(lesson, job_ids, owner)
        if first.running and not now.running:
            st.rerun(scope="app")  # the answer can be shown now
        draw_outcome(lesson, now, present)

    panel()


def draw_outcome(lesson: Lesson, outcome, present: bool) -> None:
    if lesson.kind == "shapes":
        header = (_("Block"), _("Shape before"), _("Shape after"))
        rows = [dict(zip(header, row, strict=True)) for row in lesson_text.shape_rows(lesson)]
        st.dataframe(rows, hide_index=True)
        return
    if lesson.kind != "train":
        return
    if outcome.running:
        st.progress(
            min(outcome.step / max(outcome.total, 1), 1.0),
            text=_(W["running"])
            + (f" {outcome.step:,} / {outcome.total:,}" if outcome.total else ""),
        )
    for problem in outcome.problems:
        st.warning(problem)
    snapshots = {k: v for k, v in outcome.snapshots.items() if v.steps}
    stage = {k: snapshots.pop(k) for k in TRANSFER_LABELS if k in snapshots}
    chart = lesson.settings.get("chart", "train_loss")
    draw_charts(lesson.key, chart, snapshots, present)
    if lesson.transfer is not None:
        st.markdown(f"**{_('Transfer learning')}**")
        st.caption(lesson_text.transfer_caption(lesson.transfer, outcome))
        race = {k: stage[k] for k in (TRANSFERRED, SCRATCH) if k in stage}
        draw_charts(f"{lesson.key}_transfer", "val_accuracy", race, present)


def draw_charts(key: str, chart: str, snapshots: dict, present: bool) -> None:
    """The lesson's charts of these nets: large, one under the other, in presenter mode."""
    if not snapshots:
        return
    figs = lesson_charts.lesson_figures(chart, snapshots, present=present)
    cols = [st.container()] * len(figs) if present else st.columns(len(figs))
    for col, fig, name in zip(cols, figs, ("main", "second"), strict=False):
        col.plotly_chart(fig, key=f"chart_{key}_{name}", width="stretch")


def draw_answer(lesson: Lesson, present: bool = False) -> None:
    text = lesson.text(current_language())
    if not ran(lesson):
        st.info(_("Run the experiment first: the answer comes with its numbers."))
        return
    outcome = lesson_jobs.outcome(lesson, jobs(lesson) or (), state.owner())
    if outcome.running:
        st.info(_("The experiment is still running; the answer follows when it ends."))
        return
    times = state.lesson_value(state.LESSON_TIMES, lesson.key)
    if times and lesson.kind == "train":
        times[1] = times[1] or time.time()
        st.caption(_(W["seconds"]).format(seconds=times[1] - times[0]))
    pick = state.lesson_value(state.LESSON_PICK, lesson.key)
    if pick is not None:
        verdict = W["right"] if pick == lesson.answer else W["wrong"]
        st.markdown(f"**{_(verdict)}** {_(W['your_prediction'])}: {text.choices[pick]}")
    st.markdown(text.answer)
    st.markdown(f"**{_('What this run showed')}**")
    for held, line in lesson_text.claim_lines(lesson, outcome.claims):
        icon = ":material/check_circle:" if held else ":material/cancel:"
        (st.success if held else st.warning)(line, icon=icon)
    if outcome.claims and not all(c.held for c in outcome.claims):
        st.caption(_(W["claim_failed"]))
    elif outcome.claims:
        st.caption(_(W["claim_held"]))
    if present:  # the charts the answer points at, on the same screen
        draw_outcome(lesson, outcome, present)
