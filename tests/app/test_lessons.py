"""AppTest of the lesson page in English and German: the list, a lesson's question and
answer, claims computed from the run (the oracle: core.lesson_runs on the job's logs),
presenter mode's steps, and the contrast of the projector palette (WCAG 2 formula)."""

import pytest
from streamlit.testing.v1 import AppTest

from app import lesson_charts, lesson_chrome, services, state
from app.lesson_jobs import SIZE_ENV
from core.lesson_runs import check_claims, plan_lesson
from core.lessons import load_lessons
from tests.app.conftest import OWNER, ROOT, page

LESSONS = {lesson.key: lesson for lesson in load_lessons()}


def _texts(at) -> str:
    parts = [m.value for m in at.markdown] + [t.value for t in at.title]
    parts += [s.value for s in at.subheader] + [s.value for s in at.success]
    parts += [w.value for w in at.warning] + [i.value for i in at.info]
    return "\n".join(parts)


def _open(key: str, lang: str = "en", present: bool = False):
    at = page("lessons")
    at.query_params["lang"] = lang
    if present:
        at.query_params["present"] = "1"
    at.run()
    assert not at.exception
    at.button(key=f"start_{key}").click().run()
    assert not at.exception
    return at


@pytest.mark.parametrize(("lang", "heading"), [("en", "Lessons"), ("de", "Lektionen")])
def test_the_landing_page_lists_every_lesson_with_a_start_button(lang, heading):
    at = page("lessons")
    at.query_params["lang"] = lang
    at.run()
    assert not at.exception
    assert at.title[0].value == heading
    text = _texts(at)
    for lesson in LESSONS.values():
        assert lesson.text(lang).title in text
        start = "Start" if lang == "en" else "Starten"
        assert at.button(key=f"start_{lesson.key}").label == start


def test_the_browser_language_is_used_without_a_lang_parameter():
    at = page("lessons")
    at.run()
    assert at.title[0].value == "Lessons"  # AppTest's browser has no German locale


@pytest.mark.parametrize(
    ("lang", "verdict", "done"), [("en", "Right.", "The run shows it."),
                                  ("de", "Richtig.", "Der Lauf zeigt es.")]
)  # fmt: skip
def test_a_shapes_lesson_asks_runs_and_answers_with_its_numbers(lang, verdict, done):
    lesson = LESSONS["01-shapes"]
    at = _open(lesson.key, lang)
    text = lesson.text(lang)
    assert text.question in _texts(at)
    assert text.answer not in _texts(at)  # no answer before the run
    pills = at.button_group(key=state.lesson_key(state.LESSON_PICK, lesson.key))
    assert pills.options == [text.choices[c] for c in lesson.choices]
    pills.set_value(lesson.answer).run()
    at.button(key=f"run_{lesson.key}").click().run()
    assert not at.exception
    shown = _texts(at)
    assert text.answer in shown
    assert f"**{verdict}**" in shown
    assert len(at.success) == 2  # both claims held, each with its numbers
    before, after = ("18,434", "6,146") if lang == "en" else ("18.434", "6.146")
    assert before in shown and after in shown  # the params before and after the stride
    assert "8x16x16" in shown and "8x8x8" in shown
    assert done in [c.value for c in at.caption]
    rows = at.dataframe[0].value
    assert list(rows.iloc[0])[1:] == ["8x16x16", "8x8x8"]


def test_a_wrong_prediction_is_named_and_the_shortcut_refusal_is_shown():
    lesson = LESSONS["06-shortcuts"]
    at = _open(lesson.key, "de")
    wrong = next(c for c in lesson.choices if c != lesson.answer)
    at.button_group(key=state.lesson_key(state.LESSON_PICK, lesson.key)).set_value(wrong).run()
    at.button(key=f"run_{lesson.key}").click().run()
    shown = _texts(at)
    assert "**Nicht ganz.**" in shown
    assert "projection" in shown and "zero-pad" in shown  # the builder's own refusal


def test_a_train_lesson_runs_in_the_job_manager_and_shows_the_claims_it_checked(monkeypatch):
    monkeypatch.setenv(SIZE_ENV, "tiny")
    lesson = LESSONS["02-deeper"]
    at = _open(lesson.key, "de")
    at.button(key=f"run_{lesson.key}").click().run()
    assert not at.exception
    jobs = at.session_state[state.lesson_key(state.LESSON_JOBS, lesson.key)]
    assert len(jobs) == 1  # both nets share settings and data: one job, interleaved
    mgr = services.job_manager()
    assert mgr.wait(jobs[0], timeout=600) == "finished"
    at.run()
    assert not at.exception
    logs = {arm: log.snapshot() for arm, log in mgr.logs(jobs[0], OWNER).items()}
    expected = check_claims(lesson.claims, plan_lesson(lesson, tiny=True), logs)
    lines = at.success if expected[0].held else at.warning
    numbers = expected[0].numbers
    for arm in ("plain56", "plain20"):  # written as German writes them: 2,21
        assert f"{numbers[arm]:.3g}".replace(".", ",") in lines[0].value
    assert "Trainingsverlust" in lines[0].value
    assert lesson.text("de").answer in _texts(at)
    assert len(at.get("plotly_chart")) == 2


def test_presenter_mode_shows_one_step_at_a_time():
    lesson = LESSONS["01-shapes"]
    at = _open(lesson.key, "en", present=True)
    assert [s.value for s in at.subheader] == ["The idea"]
    assert lesson.text("en").question not in _texts(at)
    at.button[1].click().run()  # Next
    assert [s.value for s in at.subheader] == ["Your prediction"]
    assert lesson.text("en").question in _texts(at)
    at.button[0].click().run()  # Back
    assert [s.value for s in at.subheader] == ["The idea"]
    at.button(key=f"run_{lesson.key}").click().run()  # the run button, from any step
    assert [s.value for s in at.subheader] == ["The experiment"]
    at.button[1].click().run()
    assert [s.value for s in at.subheader] == ["The answer"]
    assert lesson.text("en").answer in _texts(at)


def test_the_projector_palette_keeps_its_contrast_on_white():
    assert lesson_charts.contrast("#000000", "#FFFFFF") == pytest.approx(21.0)
    assert lesson_charts.contrast("#777777", "#FFFFFF") == pytest.approx(4.48, abs=0.01)
    bg = lesson_charts.BACKGROUND
    assert lesson_charts.contrast(lesson_charts.PROJECTOR_TEXT, bg) >= 4.5
    for colour in lesson_charts.PROJECTOR_LINES:
        assert lesson_charts.contrast(colour, bg) >= 3.0, colour


def test_the_sidebar_switches_the_language_and_keeps_it_in_the_url():
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=60)
    at.run()
    assert at.title[0].value == "Lessons"
    at.sidebar.radio(key=state.LANG_SELECT).set_value("de").run()
    assert not at.exception
    assert at.query_params["lang"] in ("de", ["de"])
    assert at.title[0].value == "Lektionen"
    at.sidebar.toggle(key=state.PRESENT_TOGGLE).set_value(True).run()
    assert at.query_params["present"] in ("1", ["1"])


def test_the_presenter_section_of_the_theme_loads_only_in_presenter_mode():
    hide = '[data-testid="stSidebar"]'
    presenting, normal = lesson_chrome.theme_css(True), lesson_chrome.theme_css(False)
    assert hide in presenting
    assert hide not in normal
    assert presenting.startswith(normal.removesuffix("</style>"))  # the base sheet, then more


def test_the_transfer_lesson_starts_its_stages_and_checks_the_race(monkeypatch):
    """One button: the twins and stage 1 start at once; the page's poll submits stage 2
    when stage 1 has finished; the claims are decided on all three jobs' logs."""
    monkeypatch.setenv(SIZE_ENV, "tiny")
    lesson = LESSONS["09-generalise"]
    at = _open(lesson.key, "en")
    at.button(key=f"run_{lesson.key}").click().run()
    assert not at.exception
    key = state.lesson_key(state.LESSON_JOBS, lesson.key)
    mgr = services.job_manager()
    twins, source = at.session_state[key]
    assert mgr.info(source, OWNER).name == "09-generalise: source"
    assert "Stage 1 of 2" in "\n".join(c.value for c in at.caption)
    assert mgr.wait(source, timeout=600) == "finished"
    at.run()  # the poll: stage 2 goes in once
    at.run()
    jobs = at.session_state[key]
    assert len(jobs) == 3 and jobs[:2] == (twins, source)
    race = mgr.info(jobs[2], OWNER)
    assert race.name == "09-generalise: transfer" and race.arms == ("transferred", "scratch")
    assert "Stage 2 of 2" in "\n".join(c.value for c in at.caption)
    for job in jobs:
        assert mgr.wait(job, timeout=600) == "finished"
    at.run()
    assert not at.exception
    logs = {a: log.snapshot() for job in jobs for a, log in mgr.logs(job, OWNER).items()}
    expected = check_claims(lesson.claims, plan_lesson(lesson, tiny=True), logs)
    shown = [line.value for line in (*at.success, *at.warning)]
    numbers = expected[-1].numbers
    assert any(
        f"{numbers['transferred']:.3g}" in line and f"{numbers['scratch']:.3g}" in line
        for line in shown
    )
    assert len(at.get("plotly_chart")) == 4  # the twins' two charts, the race's two
