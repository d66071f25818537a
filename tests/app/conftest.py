"""AppTest fixtures: a finished short run in the shared job manager, owned by a token
the tests put into session_state (as a browser's URL would), and a record of the
fragment reruns a page asks the browser to schedule."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest, app_test
from streamlit.testing.v1.local_script_runner import LocalScriptRunner

from app import services, state
from core.config import TrainConfig
from core.jobs import Arm
from tests.core.helpers import separable_data, tiny_spec

ROOT = Path(__file__).resolve().parents[2]
OWNER = "0123456789abcdef0123456789abcdef"
TIMEOUT = 60


def page(name: str) -> AppTest:
    """One view on its own, with this test's owner token."""
    at = AppTest.from_file(str(ROOT / "app" / "views" / f"{name}.py"), default_timeout=TIMEOUT)
    at.session_state[state.OWNER] = OWNER
    return at


@pytest.fixture(scope="session", autouse=True)
def data_dir(tmp_path_factory):
    """The run store (and the data directory) of the app's job manager, in a temporary
    folder: runs train in worker processes that write there, never in the user's."""
    patch = pytest.MonkeyPatch()
    patch.setenv("RESNET_EXPLORER_DATA", str(tmp_path_factory.mktemp("data")))
    yield
    mgr = services.job_manager()
    if hasattr(mgr, "shutdown"):
        mgr.shutdown()
    patch.undo()


@pytest.fixture(scope="session")
def finished_run() -> str:
    mgr = services.job_manager()
    job = mgr.submit(
        OWNER,
        "tiny twin",
        [Arm("Plain-8", tiny_spec("plain8_narrow")), Arm("ResNet-8", tiny_spec("resnet8_narrow"))],
        separable_data(),
        TrainConfig(steps=12, batch_size=16, eval_every=6, device="cpu"),
    )
    assert mgr.wait(job, timeout=60) == "finished"
    return job


@pytest.fixture
def auto_reruns(monkeypatch) -> list[float]:
    """The intervals of every `st.fragment(run_every=...)` the pages run in this test
    register: the messages that make a browser rerun a fragment by itself. AppTest's own
    script runner, with one more listener on the messages it already sends."""
    intervals: list[float] = []

    class Recording(LocalScriptRunner):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)

            def record(sender, event, **data):
                msg = data.get("forward_msg")
                if msg is not None and msg.HasField("auto_rerun"):
                    intervals.append(msg.auto_rerun.interval)

            self.on_event.connect(record, weak=False)

    monkeypatch.setattr(app_test, "LocalScriptRunner", Recording)
    return intervals
