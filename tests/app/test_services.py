"""services.submit: the one path from a page to a queued run, and the one place its
refusals are caught, each as a readable line."""

from app import services
from core import experiments
from core.config import TrainConfig
from core.data import DataRequest
from core.spec import NetSpec, PoolSpec
from tests.app.conftest import OWNER
from tests.core.helpers import tiny_spec

DIGITS = DataRequest(name="digits", size=16)


def test_submit_fits_each_net_to_the_data_and_queues_the_run():
    plain, res = experiments.race_pair("8 layers, narrow")  # made for 3x16x16, 10 classes
    config = TrainConfig(steps=2, batch_size=32, device="cpu")
    started = services.submit(OWNER, "two", [plain, res], DIGITS, config)
    assert started.error is None
    mgr = services.job_manager()
    info = mgr.info(started.job, OWNER)
    assert info.arms == ("Plain-8", "ResNet-8")
    assert {s.input_shape for s in info.specs.values()} == {(1, 16, 16)}  # digits: grey
    assert mgr.wait(started.job, timeout=120) == "finished"


def test_submit_says_why_a_net_does_not_fit():
    spec = NetSpec(name="pools", input_shape=(3, 32, 32), num_classes=10, blocks=(PoolSpec(),) * 5)
    started = services.submit(OWNER, "x", [spec], DIGITS, TrainConfig(steps=2, device="cpu"))
    assert started.job is None
    assert started.error.startswith("pools does not fit 1x16x16 images (block 4:")


def test_submit_checks_the_settings_against_the_data():
    config = TrainConfig(epochs=1, batch_size=4096, device="cpu")
    started = services.submit(OWNER, "x", [tiny_spec()], DIGITS, config)
    assert started.job is None
    assert "the batch size 4096 is larger than the" in started.error
    assert "training images; use a batch size of at most" in started.error


def test_submit_without_data_asks_for_the_upload():
    started = services.submit(OWNER, "x", [tiny_spec()], None, TrainConfig(device="cpu"))
    assert started == services.Started(error="upload a zip of class folders first")
