"""A teacher's class in a real browser: `?lang=de&present=1`, lesson 2 and lesson 8 run
from the lesson page to their answer, in German, in presenter mode. The server runs the
lessons at their `test:` size (RESNET_EXPLORER_LESSON_SIZE=tiny) unless
RESNET_EXPLORER_LESSON_SIZE is set to something else (e.g. `full`: the classroom size,
about a minute per lesson on a 2-core CPU). Screenshots go to a temporary folder, or to
assets/ with RESNET_EXPLORER_SHOTS=assets. The seconds each lesson took are printed.
"""

import os
import time

import pytest

from tests.e2e.serving import ROOT, browser_page, start_server
from tests.e2e.test_browser import SHOTS_ENV, until

pytestmark = pytest.mark.e2e

SIZE_ENV = "RESNET_EXPLORER_LESSON_SIZE"
RUN_LIMIT_S = 1200  # a deadline for the wait, not a claim about speed


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {
        "RESNET_EXPLORER_DATA": str(tmp_path_factory.mktemp("data")),
        SIZE_ENV: os.environ.get(SIZE_ENV, "tiny"),
    }
    with start_server(env) as (url, _):
        yield url


@pytest.fixture(scope="module")
def page(server):
    with browser_page(viewport={"width": 1600, "height": 1000}, locale="de-DE") as page:
        yield page


def _click(page, key: str) -> None:
    """The button whose Streamlit key is `key` (each keyed element carries st-key-<key>)."""
    page.locator(f".st-key-{key} button").click()


def _run_to_the_answer(page, key: str, pick: str) -> float:
    """From the lesson's first step: Next to the question, pick, run, wait, Next to the
    answer. Returns the seconds from the run button to the answer."""
    page.get_by_role("heading", name="Die Idee").wait_for()
    page.get_by_role("button", name="Weiter").click()
    page.get_by_role("heading", name="Ihre Vorhersage").wait_for()
    page.get_by_role("radio", name=pick).click()
    start = time.monotonic()
    _click(page, f"run_{key}")
    page.get_by_role("heading", name="Das Experiment").wait_for()
    english = []  # the live panel (a fragment, rerun on its own) speaks German too

    def finished() -> bool:
        english.append(page.get_by_text("Running…").count())
        progress = page.locator('[data-testid="stProgress"]').count()
        return progress == 0 and page.locator('[data-testid="stPlotlyChart"]').count() == 2

    until(finished, what=f"{key} to finish", timeout=RUN_LIMIT_S)
    assert not any(english)
    page.get_by_role("button", name="Weiter").click()
    page.get_by_role("heading", name="Die Antwort").wait_for()
    page.get_by_text("Was dieser Lauf gezeigt hat").wait_for()
    return time.monotonic() - start


def _answer_shot(page, path) -> None:
    """The answer with its charts: Streamlit scrolls inside its own container, so a taller
    window (for the screenshot only) shows what a projector shows by scrolling."""
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": 2 * size["height"]})
    page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for()
    page.wait_for_timeout(1000)  # the charts redraw at the new size
    page.screenshot(path=str(path))
    page.set_viewport_size(size)


def test_lessons_2_and_8_in_german_presenter_mode(server, page, tmp_path):
    shots = ROOT / os.environ[SHOTS_ENV] if os.environ.get(SHOTS_ENV) else tmp_path
    shots.mkdir(exist_ok=True)
    page.goto(f"{server}/?lang=de&present=1")
    page.get_by_role("heading", name="Lektionen").wait_for()
    page.locator(".st-key-start_10-costs button").wait_for()  # the whole list is drawn
    assert page.locator('[data-testid="stSidebar"]').is_hidden()  # presenter: no sidebar
    page.screenshot(path=str(shots / "lessons.png"))

    _click(page, "start_02-deeper")
    page.get_by_role("heading", name="Lektion 2: Tiefer ist nicht besser").wait_for()
    seconds = {"02-deeper": _run_to_the_answer(page, "02-deeper", "das Netz mit 20 Schichten")}
    page.get_by_text("Das Netz mit 20 Schichten. Schauen Sie").wait_for()
    _answer_shot(page, shots / "lesson_02_de.png")

    page.goto(f"{server}/?lang=de&present=1&lesson=08-switch")
    page.get_by_role("heading", name="Lektion 8: Skip-Verbindungen live einschalten").wait_for()
    pick = "Seine frühen Schichten bekommen viel mehr Gradient, und der Verlust springt"
    seconds["08-switch"] = _run_to_the_answer(page, "08-switch", pick)
    page.get_by_text("Beides reagiert sofort.").wait_for()
    assert page.get_by_text("Wachstum des Gradienten der ersten Schicht").count() == 1
    _answer_shot(page, shots / "lesson_08_de.png")
    print(f"\nlesson seconds (size {os.environ.get(SIZE_ENV, 'tiny')}): {seconds}")
