"""The app on the Ray backend, in a real browser: `streamlit run` with
RESNET_EXPLORER_BACKEND=ray and no RAY_ADDRESS, so the app starts a local Ray instance
itself (2 CPUs); a small run started on the Train page trains in a Ray actor (seen among
the machine's processes), its live charts grow, a skip toggled live reaches the run and
its event marker appears, and Stop ends it.

Skipped, saying why, only where `ray` is not installed (requirements-dev.txt has it).
"""

import re
from pathlib import Path

import pytest

from core.store import RunStore
from tests.e2e.serving import browser_page, start_server, start_training
from tests.e2e.test_browser import _step, until

pytestmark = pytest.mark.e2e
TIMEOUT = 180  # Ray's start and the actor's first import of torch, on a busy machine


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    try:
        import ray  # noqa: F401
    except ImportError:
        pytest.skip("ray is not installed (pip install -r requirements-dev.txt)")
    data = tmp_path_factory.mktemp("ray-data")
    env = {
        "RESNET_EXPLORER_DATA": str(data),
        "RESNET_EXPLORER_BACKEND": "ray",
        "RESNET_EXPLORER_RAY_CPUS": "2",
        "RAY_ADDRESS": "",  # no cluster: the app starts a local Ray instance
    }
    with start_server(env) as (url, proc):
        yield url, proc, data


def ray_actors() -> list[str]:
    """The command lines of this machine's Ray actor processes that train a run."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text.startswith("ray::RunActor"):
            found.append(text.strip())
    return found


def test_a_run_on_ray_has_live_charts_and_a_live_skip_toggle(server):
    url, _, data = server
    with browser_page(timeout_ms=TIMEOUT * 1000, viewport={"width": 1600, "height": 1200}) as page:
        page.goto(url)
        start_training(page)
        charts = page.locator('[data-testid="stPlotlyChart"]')
        until(lambda: charts.count() >= 4, "the four live charts", TIMEOUT)
        first = until(lambda: _step(page), "a first step", TIMEOUT)
        until(lambda: _step(page) > first + 5, "the charts to grow", TIMEOUT)
        assert ray_actors(), "the run should train in a Ray actor process"

        page.get_by_text("block 1", exact=True).click()  # live, while it trains
        marker = page.get_by_text(re.compile(r"skip (on|off): block 1"))
        until(lambda: marker.count() > 0, "the skip's event marker", TIMEOUT)
        toggled_at = _step(page)
        until(lambda: _step(page) > toggled_at + 3, "training to go on after the toggle")

        page.get_by_role("button", name="Stop").click()
        page.get_by_text("Everything recorded so far is kept").wait_for()

    store = RunStore(data)  # what the Runs page and exports read: the app's own store
    (run_id,) = [r[0] for r in store.connect().execute("SELECT id FROM runs")]
    row = store.run(run_id)
    assert row.status == "stopped" and row.step > first + 5
    kinds = [e.kind for e in store.events(run_id)]
    assert "skip" in kinds and kinds[-1] == "stop"
    assert all(store.checkpoint_path(run_id, arm).is_file() for arm in row.arms)
