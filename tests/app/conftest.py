"""AppTest fixtures: a finished short run in the shared job manager, owned by a token
the tests put into session_state (as a browser's URL would)."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app import services
from core.config import TrainConfig
from core.jobs import Arm
from tests.core.helpers import separable_data, tiny_spec

ROOT = Path(__file__).resolve().parents[2]
OWNER = "0123456789abcdef0123456789abcdef"
TIMEOUT = 60


def page(name: str) -> AppTest:
    """One view on its own, with this test's owner token."""
    at = AppTest.from_file(str(ROOT / "app" / "views" / f"{name}.py"), default_timeout=TIMEOUT)
    at.session_state["owner"] = OWNER
    return at


@pytest.fixture(scope="session")
def finished_run() -> str:
    mgr = services.job_manager()
    job = mgr.submit(
        OWNER,
        "tiny twin",
        [Arm("Plain-8", tiny_spec("plain8_narrow")), Arm("ResNet-8", tiny_spec("resnet8_narrow"))],
        separable_data(),
        TrainConfig(steps=12, batch_size=16, eval_every=6),
    )
    assert mgr.wait(job, timeout=60) == "finished"
    return job
