"""The Inside page in a real browser: train a tiny run on the Train page, then open the
Inside page, compute its lesion study and a small loss landscape, and see their charts.
Starts its own `streamlit run` on a free port (the fixtures of tests/e2e/test_browser.py).
"""

import pytest

from tests.e2e.serving import start_server
from tests.e2e.test_browser import page, until  # noqa: F401  (page: a fixture)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with start_server({"RESNET_EXPLORER_DATA": str(tmp_path_factory.mktemp("data"))}) as (url, _):
        yield url


def _visible_charts(page) -> int:  # noqa: F811
    return page.locator('[data-testid="stPlotlyChart"] >> visible=true').count()


def _fill(page, label: str, value: str) -> None:  # noqa: F811
    field = page.get_by_role("spinbutton", name=label, exact=True)
    field.fill(value)
    field.press("Tab")


def test_lesion_study_and_loss_landscape_of_a_trained_run(server, page):  # noqa: F811
    page.goto(server)
    page.get_by_role("link", name="Build").click()
    page.get_by_role("heading", name="Build a network").wait_for()

    # a tiny run: 500 Shapes, two epochs
    page.get_by_role("link", name="Train").click()
    page.get_by_role("heading", name="Train").wait_for()
    _fill(page, "Training images (0 = all)", "500")
    _fill(page, "Epochs", "2")
    _fill(page, "Warm-up steps", "0")  # 8 steps in all: no room for a warm-up
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Finished. Open it again any time").wait_for(timeout=180_000)

    page.get_by_role("link", name="Inside").click()
    page.get_by_role("heading", name="Inside").wait_for()

    # lesion study: one bar chart, one k-curve
    page.get_by_role("button", name="Run the lesion study").click()
    until(lambda: _visible_charts(page) >= 2, what="the lesion charts", timeout=180)
    assert page.get_by_text("computed in").count() >= 1

    # a small 2D landscape: contour and surface
    page.get_by_role("tab", name="Loss landscape").click()
    _fill(page, "Grid (points per axis)", "5")
    _fill(page, "Training images", "64")
    page.get_by_role("button", name="Compute", exact=True).click()
    until(lambda: _visible_charts(page) >= 2, what="the landscape charts", timeout=180)
    assert page.get_by_text("5 points per axis · 64 training images").count() == 1
    assert page.locator('[data-testid="stException"]').count() == 0
