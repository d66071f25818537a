"""The landing page: the lessons, one line each with a Start button; a started lesson
fills the page (app/lesson_page.py draws its steps). `?lesson=02-deeper` opens one."""

from __future__ import annotations

import streamlit as st

from app import lesson_chrome, lesson_jobs, lesson_page, state
from app.i18n import LESSON_WORDS as W
from app.i18n import N_, _, current_language
from core.lesson_runs import shape_net
from core.lessons import Lesson, LessonError, load_lessons

LESSON_PARAM = "lesson"
PAGES = {  # explore: -> the tool page that continues the lesson
    "build": ("views/build.py", N_("Open it in Build")),
    "train": ("views/train.py", N_("Train it yourself")),
    "compare": ("views/compare.py", N_("Compare it yourself")),
    "explain": ("views/explain.py", N_("Explain it yourself")),
}


@st.cache_resource
def lessons() -> list[Lesson]:
    """Read and checked once per server; a broken file stops the page with its fix."""
    return load_lessons()


def open_lesson(key: str | None) -> None:
    if key is None:
        if LESSON_PARAM in st.query_params:
            del st.query_params[LESSON_PARAM]
    else:
        st.query_params[LESSON_PARAM] = key


def lesson_list(all_lessons: list[Lesson]) -> None:
    st.title(_(W["lessons"]))
    st.markdown(
        _(
            "Why residual networks? Ten short experiments, in order. Each one asks a question, "
            "runs live, and shows what it found."
        )
    )
    lang = current_language()
    for lesson in all_lessons:
        cols = st.columns([1, 10, 2], vertical_alignment="center")
        cols[0].markdown(f"**{lesson.number}**")
        cols[1].markdown(lesson.text(lang).title)
        if cols[2].button(_(W["start"]), key=f"start_{lesson.key}", icon=":material/play_arrow:"):
            open_lesson(lesson.key)
            st.rerun()


def explore(lesson: Lesson) -> None:
    """Opens the tool page the lesson names, with the lesson's net on the builder."""
    target = lesson.settings.get("explore", "build")
    path, label = PAGES[target]
    st.markdown(f"**{_(W['explore'])}**")
    if not st.button(_(label), icon=":material/explore:", key=f"explore_{lesson.key}"):
        return
    if lesson.kind == "train":
        arms = [a for a in lesson_jobs.plan(lesson) if a.train] or lesson_jobs.plan(lesson)
        state.set_spec(arms[-1].spec)
    else:
        state.set_spec(shape_net(lesson))
    state.bump_spec_version()
    st.switch_page(path)


def step_nav(lesson: Lesson, index: int) -> None:
    """Back, the step's place, Next: the presenter's remote."""
    cols = st.columns([2, 2, 2, 4, 5], vertical_alignment="center")
    if cols[0].button(_(W["back"]), icon=":material/arrow_back:", disabled=index == 0):
        lesson_page.set_step(lesson, index - 1)
        st.rerun()
    cols[1].caption(f"{index + 1} / {len(lesson_page.STEPS)}")
    last = index == len(lesson_page.STEPS) - 1
    if cols[2].button(_(W["next"]), icon=":material/arrow_forward:", disabled=last):
        lesson_page.set_step(lesson, index + 1)
        st.rerun()
    with cols[3]:
        lesson_page.run_button(lesson, present=True)
    if cols[4].button(_("Leave presenter mode"), key="leave_present"):
        lesson_chrome.set_presenting(False)
        st.rerun()


def draw_step(lesson: Lesson, name: str, present: bool) -> None:
    if name == "explain":
        lesson_page.draw_explain(lesson)
    elif name == "predict":
        lesson_page.draw_predict(lesson)
    elif name == "run":
        lesson_page.draw_run(lesson, present)
    else:
        lesson_page.draw_answer(lesson, present)
        explore(lesson)


def show_lesson(lesson: Lesson, all_lessons: list[Lesson], present: bool) -> None:
    text = lesson.text(current_language())
    if not present and st.button(_("All lessons"), icon=":material/list:"):
        open_lesson(None)
        st.rerun()
    st.title(f"{_(W['lesson'])} {lesson.number}: {text.title}")
    if present:
        index = lesson_page.step(lesson)
        step_nav(lesson, index)
        name = lesson_page.STEPS[index]
        st.subheader(_(lesson_page.STEP_TITLES[name]))
        draw_step(lesson, name, present)
        return
    for name in lesson_page.STEPS:
        if name == "answer" and not lesson_page.ran(lesson):
            break
        st.subheader(_(lesson_page.STEP_TITLES[name]))
        draw_step(lesson, name, present)


def main() -> None:
    lesson_chrome.language()
    present = lesson_chrome.presenting()
    try:
        all_lessons = lessons()
    except LessonError as e:
        st.error(_("A lesson file cannot be read: {error}").format(error=e))
        return
    key = st.query_params.get(LESSON_PARAM)
    lesson = next((x for x in all_lessons if x.key == key), None)
    if lesson is None:
        lesson_list(all_lessons)
    else:
        show_lesson(lesson, all_lessons, present)


main()
