"""Suite-wide settings: one torch thread in the test process, and a data folder of the
suite's own, so no test writes into the user's cache (~/.cache/resnet-explorer).

The nets in tests are tiny: a second thread gains nothing, and on a busy 2-core machine
OpenMP's waiting threads made them up to 20 times slower (0.7 s against 22 s to train).
"""

import os
import tempfile

import pytest
import torch

# Set before any test imports app.services: the run store and uploads go here.
os.environ["RESNET_EXPLORER_DATA"] = tempfile.mkdtemp(prefix="resnet-explorer-tests-")


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` need a CUDA device: skipped, with the reason, where there is none."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (marked gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
