"""The real thing: `streamlit run` on a free port and Debian's Chromium driven by
Playwright, through the lesson a teacher gives. Screenshots go to assets/ for the README.

A missing browser fails this test (CI installs Chromium); it is never skipped silently.
"""

import os
import re

import pytest

from tests.e2e.serving import ROOT, browser_page, start_server, start_training
from tests.waiting import wait_for


def until(condition, what: str, timeout: float = 60.0):
    """Poll the page four times a second."""
    return wait_for(condition, timeout=timeout, what=what, every=0.25)


pytestmark = pytest.mark.e2e

# Screenshots go to a temporary folder, or to assets/ for the README with
# `make screenshots` (which sets RESNET_EXPLORER_SHOTS=assets).
SHOTS_ENV = "RESNET_EXPLORER_SHOTS"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with start_server({"RESNET_EXPLORER_DATA": str(tmp_path_factory.mktemp("data"))}) as (url, _):
        yield url


@pytest.fixture(scope="module")
def page(server):
    with browser_page(viewport={"width": 1600, "height": 1200}) as page:
        yield page


def _step(page) -> int:
    text = page.locator('[data-testid="stProgress"]').first.inner_text()
    match = re.search(r"step ([\d,]+) of", text)
    return int(match.group(1).replace(",", "")) if match else 0


def _token(page) -> str | None:
    match = re.search(r"[?&]me=([0-9a-f]{32})", page.url)
    return match.group(1) if match else None


LANDING = "Lessons"  # the landing page's heading
PAGES = {  # link -> heading
    "Lessons": LANDING,
    "Build": "Build a network",
    "Train": "Train",
    "Compare": "Compare plain and residual",
    "Explain": "Explain",
    "Runs": "Your runs",
}
PROJECTORS = ((1600, 1000), (1280, 720))


def _to_top(page) -> None:
    """Scroll every scrolled container back to the top (Streamlit scrolls its main area,
    not the window)."""
    page.evaluate(
        "() => { window.scrollTo(0, 0); document.querySelectorAll('*').forEach("
        "e => { if (e.scrollTop) e.scrollTop = 0; }); }"
    )


def _in_view(page, locator, share: float) -> bool:
    """The top `share` of the element is inside the viewport, without scrolling."""
    box = locator.bounding_box()
    height = page.viewport_size["height"]
    return box is not None and box["y"] >= 0 and box["y"] + share * box["height"] <= height


def _projector_layout(page, shots) -> None:
    """While a run trains, the loss chart, the gradient chart (most of each) and the skip
    toggles (whole) are on screen at a projector's sizes, with no scrolling."""
    charts = page.locator('[data-testid="stPlotlyChart"]')
    toggle = page.get_by_text("block 1", exact=True)
    for width, height in PROJECTORS:
        page.set_viewport_size({"width": width, "height": height})
        _to_top(page)
        until(
            lambda: (
                _in_view(page, charts.nth(0), 0.6)
                and _in_view(page, charts.nth(1), 0.6)
                and _in_view(page, toggle, 1.0)
            ),
            what=f"loss chart, gradient chart and skip toggles on screen at {width}x{height}",
        )
        page.screenshot(path=str(shots / f"train_{width}x{height}.png"))
    page.set_viewport_size({"width": 1600, "height": 1200})


def _reload_keeps_the_runs(page, token: str, run_text: str) -> None:
    """On every page, the token is in the URL, and a reload (a new session) keeps it and
    still finds this browser's runs."""
    for link, heading in PAGES.items():
        page.get_by_role("link", name=link).click()
        page.get_by_role("heading", name=heading).wait_for()
        until(lambda: _token(page) == token, what=f"the token in the URL of {link}")
        page.reload()
        page.get_by_role("heading", name=heading).wait_for()
        until(lambda: _token(page) == token, what=f"the same token after reloading {link}")
        page.get_by_role("link", name="Runs").click()
        page.get_by_role("heading", name="Your runs").wait_for()
        page.get_by_text(run_text).first.wait_for()


def test_build_train_toggle_stop_in_a_real_browser(server, page, tmp_path):
    SHOTS = ROOT / os.environ[SHOTS_ENV] if os.environ.get(SHOTS_ENV) else tmp_path
    SHOTS.mkdir(exist_ok=True)
    outside = []  # the app works offline: nothing is fetched from another host (the icon)
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(server) else None)
    page.goto(server)  # the landing page: the lessons
    page.get_by_role("heading", name=LANDING).wait_for()
    token = until(lambda: _token(page), what="the owner token in the landing page's URL")
    page.reload()  # the landing page keeps its token too
    page.get_by_role("heading", name=LANDING).wait_for()
    until(lambda: _token(page) == token, what="the same token after reloading the landing page")
    page.get_by_role("link", name="Build").click()
    page.get_by_role("heading", name="Build a network").wait_for()
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for()  # the diagram
    assert "3 of 3" in page.locator('[data-testid="stMetric"]').nth(3).inner_text()

    # residual -> plain with the network-wide switch
    page.get_by_text("Skip connections on", exact=True).click()
    until(
        lambda: "0 of 3" in page.locator('[data-testid="stMetric"]').nth(3).inner_text(),
        what="the skips to switch off",
    )
    page.screenshot(path=str(SHOTS / "build.png"), full_page=False)

    # a run on built-in data, long enough to act on while it trains
    start_training(page)
    charts = page.locator('[data-testid="stPlotlyChart"]')
    until(lambda: charts.count() >= 4, what="the four live charts")
    first = until(lambda: _step(page), what="a first step")
    until(lambda: _step(page) > first + 5, what="the charts to grow")
    _projector_layout(page, SHOTS)

    # switch one skip on, live, and see its marker on the loss chart
    page.get_by_text("block 1", exact=True).click()
    until(lambda: page.get_by_text("skip on: block 1").count() > 0, what="the event marker")
    page.get_by_text("Log scale for the loss").scroll_into_view_if_needed()
    until(
        lambda: page.locator('[data-testid="stPlotlyChart"] .main-svg').count() >= 4,
        what="every chart drawn",
    )
    page.screenshot(path=str(SHOTS / "train.png"))

    page.get_by_role("button", name="Stop").click()
    page.get_by_text("Everything recorded so far is kept").wait_for()

    page.get_by_role("link", name="Runs").click()
    page.get_by_role("heading", name="Your runs").wait_for()
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
    page.screenshot(path=str(SHOTS / "runs.png"), full_page=False)

    # a reload is a new Streamlit session: the token in the URL finds the run again
    assert _token(page) == token, page.url
    page.reload()
    page.get_by_text("Plain-8 narrow · Shapes: stopped").wait_for()
    _reload_keeps_the_runs(page, token, "Plain-8 narrow · Shapes: stopped")

    # attribution maps of the stopped run, in the browser
    page.get_by_role("link", name="Explain").click()
    page.get_by_role("heading", name="Explain").wait_for()
    page.get_by_role("button", name="Explain", exact=True).click()
    page.locator('[data-testid="stPlotlyChart"] >> visible=true').first.wait_for()
    page.screenshot(path=str(SHOTS / "explain.png"), full_page=False)

    page.get_by_role("link", name="Compare").click()
    page.get_by_role("heading", name="Compare plain and residual").wait_for()
    page.get_by_role("tab", name="Gradient flow at init").click()
    page.locator('[data-testid="stPlotlyChart"] >> visible=true').first.wait_for()
    page.screenshot(path=str(SHOTS / "compare.png"), full_page=False)
    assert [u for u in outside if not u.startswith(("data:", "blob:"))] == []
