"""Transfer: which weights carry over, which are new, what trains, and what is refused."""

import dataclasses
import os
import signal

import pytest
import torch

from core.arm_init import init_from_bytes, init_path, init_to_bytes
from core.checkpoint import CheckpointError
from core.config import TrainConfig
from core.data import DataRequest, TensorData, load
from core.model import build
from core.presets import PRESETS
from core.run import Run
from core.transfer import (
    HEAD_KEYS,
    SCRATCH,
    TRANSFERRED,
    TransferError,
    trainable,
    transfer_net,
    transfer_race,
)
from core.workers import ProcessJobManager
from tests.core.helpers import separable_data, tiny_spec
from tests.waiting import wait_for


def _trained(seed: int = 3):
    spec = tiny_spec("resnet8_narrow")
    return build(spec, seed=seed), spec


def _data(classes: int = 2, size: int = 8, channels: int = 3) -> TensorData:
    n = 40
    y = torch.arange(n) % classes
    x = torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(1))
    return TensorData(
        name="target",
        classes=tuple(f"c{i}" for i in range(classes)),
        x_train=x[:30],
        y_train=y[:30],
        x_val=x[30:],
        y_val=y[30:],
        mean=(0.5,) * channels,
        std=(0.3,) * channels,
    )


def test_same_classes_copies_every_weight_and_finetune_trains_all():
    source, spec = _trained()
    net, new_spec = transfer_net(source, spec, separable_data(), "finetune")
    assert new_spec.num_classes == 2
    src = source.state_dict()
    for k, v in net.state_dict().items():
        assert torch.equal(v, src[k]), k
    assert trainable(net) == [n for n, _ in source.named_parameters()]
    x = torch.rand(4, 3, 8, 8)
    source.eval(), net.eval()
    assert torch.equal(net(x), source(x))


def test_new_classes_get_a_new_head_and_head_mode_freezes_the_rest():
    source, spec = _trained()
    net, new_spec = transfer_net(source, spec, _data(classes=5), "head")
    assert new_spec.num_classes == 5 and net.head.fc.out_features == 5
    assert trainable(net) == ["head.fc.weight", "head.fc.bias"]
    src = source.state_dict()
    body = [k for k in net.state_dict() if not k.startswith("head.fc.")]
    assert body and all(torch.equal(net.state_dict()[k], src[k]) for k in body)
    # the new head is the seeded fresh one, not the old weights cut down
    fresh = build(new_spec, seed=0)
    assert torch.equal(net.head.fc.weight, fresh.head.fc.weight)


def test_larger_images_fit_a_net_with_global_pooling():
    source, spec = _trained()
    net, new_spec = transfer_net(source, spec, _data(size=16), "finetune")
    assert new_spec.input_shape == (3, 16, 16)
    assert net(torch.rand(2, 3, 16, 16)).shape == (2, 2)


def test_other_channels_are_refused_with_the_stem_named():
    source, spec = _trained()
    with pytest.raises(TransferError) as e:
        transfer_net(source, spec, _data(channels=1), "head")
    assert str(e.value) == (
        "transfer: the network's stem takes 3 colour channel(s), but 'target' has 1: the stem "
        "would have to change, and its trained weights with it; choose data with as many "
        "channels as the run it starts from (colour images)"
    )


def test_other_image_sizes_are_refused_for_a_net_without_global_pooling():
    spec = PRESETS["dense_residual"].spec(input_shape=(3, 8, 8), num_classes=2)
    source = build(spec, seed=0)
    with pytest.raises(TransferError) as e:
        transfer_net(source, spec, _data(size=16), "head")
    assert str(e.value) == (
        "transfer: this network has no global pooling, so it takes only 3x8x8 images, not "
        "3x16x16; resize the new images to 3x8x8"
    )
    net, _ = transfer_net(source, spec, _data(size=8, classes=3), "head")  # same size: fine
    assert net.head.fc.out_features == 3


def test_unknown_mode_and_mismatched_weights_are_refused():
    source, spec = _trained()
    with pytest.raises(TransferError, match="the transfer mode"):
        transfer_net(source, spec, separable_data(), "everything")
    other = build(tiny_spec("resnet8_narrow"), seed=0)
    wider = dataclasses.replace(spec, stem=dataclasses.replace(spec.stem, out_channels=4))
    with pytest.raises(TransferError, match="do not fit"):
        transfer_net(other, wider, separable_data(), "head")


# --- a transfer race: initial weights in a Run, in a worker process -----------------------


def _race_config(steps: int = 6) -> TrainConfig:
    return TrainConfig(
        steps=steps, batch_size=8, lr=0.05, eval_every=3, device="cpu", precision="fp32"
    )


def _race(mode: str, target: TensorData, steps: int = 6):
    source, spec = _trained()
    config = _race_config(steps)
    arms = transfer_race(source, spec, target, mode, seed=config.seed)
    return source, arms, Run(arms, target, config)


def test_the_transferred_arm_starts_as_the_source_net_and_the_other_from_scratch():
    source, arms, run = _race("finetune", separable_data())
    x = separable_data().x_val[:8]
    moved = run.trainers[TRANSFERRED]
    source.eval(), moved.net.eval()
    # the first step's forward pass: the source net's outputs on the same (prepared) input
    inputs = moved.prepare(x)
    assert torch.allclose(moved.net(inputs), source(inputs), atol=1e-5)
    fresh = build(arms[1].spec, seed=0).state_dict()
    scratch = run.trainers[SCRATCH].net.state_dict()
    assert all(torch.equal(v, fresh[k]) for k, v in scratch.items())
    assert arms[0].spec == arms[1].spec and arms[0].name != arms[1].name


def test_head_mode_trains_the_new_head_only_and_both_arms_see_the_same_batches():
    target = _data(classes=5)
    source, _, run = _race("head", target)
    moved, scratch = run.trainers[TRANSFERRED], run.trainers[SCRATCH]
    assert moved.net.head.fc.out_features == 5
    # the new head is the scratch arm's head, weight for weight: one seed built both
    assert torch.equal(moved.net.head.fc.weight, scratch.net.head.fc.weight)
    head_before = moved.net.head.fc.weight.detach().clone()
    seen = []
    while not run.ended:
        run.step()
        seen.append((moved.last_batch, scratch.last_batch))
    assert run.status == "finished" and len(seen) >= 6
    for (xa, ya), (xb, yb) in seen:  # same images, labels and order in every step
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    src = source.state_dict()
    params = dict(moved.net.named_parameters())
    frozen = [n for n in params if n not in HEAD_KEYS]
    assert frozen and all(torch.equal(params[n].detach(), src[n]) for n in frozen)
    assert not torch.equal(moved.net.head.fc.weight.detach(), head_before)  # it trained
    assert moved.log.param_names == HEAD_KEYS  # telemetry follows what trains


def test_initial_weights_round_trip_as_a_file_and_a_wrong_one_is_refused():
    _, arms, _ = _race("head", _data(classes=5))
    init = arms[0].init
    back = init_from_bytes(init_to_bytes(init))
    assert back.frozen == init.frozen and set(back.state) == set(init.state)
    assert all(torch.equal(back.state[k], v) for k, v in init.state.items())
    cut = init_to_bytes(init)[:-4]
    with pytest.raises(CheckpointError, match="cut short or has extra bytes"):
        init_from_bytes(cut)
    bad = init_to_bytes(dataclasses.replace(init, frozen=("no.such.weight",)))
    with pytest.raises(CheckpointError) as e:
        init_from_bytes(bad)
    assert str(e.value) == "the initial weights: freeze a parameter they do not hold"


def test_a_transfer_race_in_a_worker_process_starts_from_the_file(tmp_path):
    source, spec = _trained()
    target = _data(classes=5)
    config = _race_config(steps=4)
    arms = transfer_race(source, spec, target, "head", seed=config.seed)
    mgr = ProcessJobManager(tmp_path, threads_per_job=1, checkpoint_every=2, flush_s=0.05)
    try:
        job = mgr.submit("ann", "Transfer: test", arms, target, config)
        assert init_path(mgr.store, job, "Transferred").is_file()
        assert not init_path(mgr.store, job, "From_scratch").exists()
        assert mgr.wait(job, 180) == "finished", mgr.info(job, "ann").message
        net, _ = mgr.copy_model(job, "ann", TRANSFERRED)
    finally:
        mgr.shutdown()
    src, now = source.state_dict(), dict(net.named_parameters())
    body = [n for n in now if n not in HEAD_KEYS]
    assert all(torch.equal(now[n].detach().cpu(), src[n]) for n in body)
    assert now["head.fc.weight"].shape == (5, src["head.fc.weight"].shape[1])


def test_a_killed_transfer_run_resumes_to_the_uninterrupted_weights(tmp_path):
    """The worker rebuilds the start (and the frozen set) from the file before loading its
    checkpoint over it: the resumed run ends where an uninterrupted one does."""
    source, spec = _trained()
    request = DataRequest(name="shapes", size=8, n=240)
    target = load(request)
    config = TrainConfig(steps=60, batch_size=16, lr=0.05, device="cpu", precision="fp32")
    arms = transfer_race(source, spec, target, "head", seed=config.seed)
    mgr = ProcessJobManager(tmp_path, threads_per_job=1, checkpoint_every=7, flush_s=0.05)
    try:
        job = mgr.submit("ann", "Transfer: resumed", arms, request, config)
        wait_for(lambda: mgr.info(job, "ann").step >= 16, 180, "training")
        os.kill(mgr.worker_pid(job), signal.SIGKILL)
        wait_for(lambda: mgr.worker_pid(job) is None, 30, "the worker's end")
        assert mgr.info(job, "ann").status == "interrupted"
        mgr.resume(job, "ann")
        assert mgr.wait(job, 180) == "finished", mgr.info(job, "ann").message
        resumed = {a: mgr.copy_model(job, "ann", a)[0].state_dict() for a in (TRANSFERRED, SCRATCH)}
    finally:
        mgr.shutdown()
    oracle = Run(arms, target, config)
    while not oracle.ended:
        oracle.step()
    for arm, state in resumed.items():
        for name, want in oracle.trainers[arm].net.state_dict().items():
            torch.testing.assert_close(state[name].cpu(), want, rtol=1e-5, atol=1e-6)
