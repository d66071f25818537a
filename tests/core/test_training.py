"""The trainer against autograd, and its promises: learning, determinism, schedules,
telemetry, live commands and divergence."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from core.analysis import depth_sweep, grad_flow_at_init
from core.config import ConfigError, TrainConfig
from core.model import build
from core.training import DivergedError, Trainer, layer_of
from tests.core.helpers import separable_data, tiny_spec, with_dropout

CPU = {"device": "cpu", "precision": "fp32"}  # CPU oracles compare exactly with these


def test_per_layer_gradient_norms_equal_an_autograd_oracle():
    data, spec = separable_data(), tiny_spec()
    net = build(spec, seed=0)
    oracle = copy.deepcopy(net)
    trainer = Trainer(net, data, TrainConfig(steps=3, batch_size=32, lr=0.1, **CPU))
    record = trainer.step()  # the norms are read before the optimizer step
    x, y = trainer.last_batch
    loss = F.cross_entropy(oracle.train()(x), y)
    names, params = zip(*oracle.named_parameters(), strict=True)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    expected = {}
    for name, g in zip(names, grads, strict=True):
        if g is not None:
            layer = layer_of(name)
            expected[layer] = expected.get(layer, 0.0) + g.square().sum().item()
    assert record.loss == pytest.approx(loss.item(), rel=1e-6)
    assert trainer.layers == ("stem", "blocks.0", "blocks.1", "blocks.2", "head")
    for layer, norm in zip(trainer.layers, record.grad_norms, strict=True):
        assert norm == pytest.approx(math.sqrt(expected[layer]), rel=1e-5), layer


def test_weight_norms_and_update_ratios_match_the_step_taken():
    data, spec = separable_data(), tiny_spec()
    net = build(spec, seed=0)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    trainer = Trainer(net, data, TrainConfig(steps=2, batch_size=32, lr=0.1, weight_decay=0, **CPU))
    record = trainer.step()
    i = trainer.layers.index("blocks.1")
    mine = [n for n in before if layer_of(n) == "blocks.1"]
    w = math.sqrt(sum(before[n].square().sum().item() for n in mine))
    after = dict(net.named_parameters())
    du = math.sqrt(sum((after[n].detach() - before[n]).square().sum().item() for n in mine))
    assert record.weight_norms[i] == pytest.approx(w, rel=1e-5)
    assert record.update_ratios[i] == pytest.approx(du / w, rel=1e-4)


def test_loss_falls_and_accuracy_rises_on_a_separable_set():
    data = separable_data()
    trainer = Trainer(build(tiny_spec(), seed=0), data, TrainConfig(epochs=4, batch_size=32))
    records = [trainer.step() for _ in range(trainer.total_steps)]
    assert trainer.done and trainer.step() is None
    assert records[-1].loss < 0.5 * records[0].loss
    assert trainer.log.snapshot().evals[-1].accuracy >= 0.95
    assert len(trainer.log.snapshot().evals) == 4  # once per epoch


@pytest.mark.parametrize("augment", [False, True])
def test_same_seed_gives_identical_losses_even_with_dropout_and_augmentation(augment):
    data, spec = separable_data(), with_dropout(tiny_spec())
    cfg = TrainConfig(steps=8, batch_size=32, augment=augment, seed=11)

    def losses():
        t = Trainer(build(spec, seed=cfg.seed), data, cfg)
        torch.manual_seed(torch.seed())  # scramble the global RNG: it must not matter
        return [t.step().loss for _ in range(8)]

    first = losses()
    assert first == losses()
    other = Trainer(build(spec, seed=12), data, TrainConfig(steps=8, batch_size=32, seed=12))
    assert [other.step().loss for _ in range(8)] != first


def test_plain_and_residual_arms_see_identical_batches():
    data = separable_data()
    cfg = TrainConfig(steps=6, batch_size=24, augment=True, seed=3)
    res = Trainer(build(tiny_spec("resnet8_narrow"), seed=3), data, cfg)
    plain = Trainer(build(tiny_spec("plain8_narrow"), seed=3), data, cfg)
    assert res.device == plain.device
    for _ in range(6):
        res.step()
        plain.step()
        assert torch.equal(res.last_batch[0], plain.last_batch[0])
        assert torch.equal(res.last_batch[1], plain.last_batch[1])


@pytest.mark.parametrize(
    ("schedule", "checks"),
    [
        ("constant", {0: 1.0, 50: 1.0, 99: 1.0}),
        ("step", {0: 1.0, 49: 1.0, 50: 0.1, 74: 0.1, 75: 0.01, 99: 0.01}),
        ("cosine", {0: 1.0, 99: 0.0}),
        ("onecycle", {0: 0.04, 99: 0.0}),
    ],
)
def test_schedules(schedule, checks):
    data = separable_data(n=400)  # 300 training images, batch 3 -> 100 steps
    t = Trainer(
        build(tiny_spec(), seed=0), data, TrainConfig(schedule=schedule, steps=100, batch_size=3)
    )
    for step, factor in checks.items():
        assert t.lr_factor(step) == pytest.approx(factor, abs=1e-9), step
    if schedule == "onecycle":
        peak = max(range(100), key=t.lr_factor)
        assert 25 <= peak <= 35 and t.lr_factor(peak) == pytest.approx(1, abs=0.02)


def test_warm_up_ramps_from_a_tenth():
    t = Trainer(
        build(tiny_spec(), seed=0),
        separable_data(),
        TrainConfig(steps=50, warmup_steps=10, batch_size=8),
    )
    assert t.lr_factor(0) == pytest.approx(0.1)
    assert t.lr_factor(5) == pytest.approx(0.55)
    assert t.lr_factor(10) == 1.0


def test_lr_change_and_skip_toggle_are_recorded_at_their_step():
    t = Trainer(build(tiny_spec(), seed=0), separable_data(), TrainConfig(steps=6, batch_size=16))
    t.step()
    t.step()
    t.set_lr(0.01)
    t.set_skip(False, block=1)
    record = t.step()
    assert record.lr == pytest.approx(0.01)
    assert t.net.skips() == {0: True, 1: False, 2: True}
    events = t.log.snapshot().events
    assert [(e.step, e.kind) for e in events] == [(2, "lr"), (2, "skip")]
    assert events[1].detail == "skip off: block 1"
    t.set_skip(False, block=1)  # already off: nothing changes, nothing is logged
    assert len(t.log.snapshot().events) == 2
    with pytest.raises(ConfigError, match="learning rate must be a number from 1e-06 to 10, got 0"):
        t.set_lr(0)


def test_divergence_stops_with_the_step_and_a_hint_and_keeps_the_record():
    from core.spec import Defaults

    spec = tiny_spec()
    import dataclasses

    spec = dataclasses.replace(spec, defaults=Defaults(batch_norm=False))
    t = Trainer(
        build(spec, seed=0),
        separable_data(),
        TrainConfig(lr=10.0, momentum=0.99, steps=200, batch_size=32),
    )
    with pytest.raises(DivergedError) as info:
        for _ in range(200):
            t.step()
    step = info.value.step
    assert f"at step {step} (learning rate 10)" in str(info.value)
    assert "Lower the learning rate (try 1)" in str(info.value)
    snap = t.log.snapshot()
    assert len(snap.steps) == step - 1  # every finite step was kept
    assert all(math.isfinite(r.loss) for r in snap.steps)
    assert snap.events[-1].kind == "diverged"


def test_log_every_records_only_every_kth_step():
    t = Trainer(
        build(tiny_spec(), seed=0),
        separable_data(),
        TrainConfig(steps=10, log_every=4, batch_size=16),
    )
    while not t.done:
        t.step()
    assert [r.step for r in t.log.snapshot().steps] == [4, 8, 10]


def test_settings_that_cannot_work_are_refused_before_training():
    with pytest.raises(ConfigError, match="the batch size 512 is larger than the 192"):
        Trainer(build(tiny_spec(), seed=0), separable_data(), TrainConfig(batch_size=512))
    with pytest.raises(ConfigError, match="this server has no CUDA device"):
        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
        Trainer(build(tiny_spec(), seed=0), separable_data(), TrainConfig(device="cuda"))


def test_gradient_flow_at_init_gives_every_layer_a_norm_without_training():
    spec = tiny_spec()
    x, y = separable_data().x_train[:16], separable_data().y_train[:16]
    flow = grad_flow_at_init(spec, x, y, seed=0)
    assert flow.layers == ("stem", "blocks.0", "blocks.1", "blocks.2", "head")
    assert all(n > 0 for n in flow.norms)


def test_depth_sweep_shows_vanishing_gradients_in_deep_plain_nets_without_bn():
    points = depth_sweep((8, 56), batch_norm=(False,), activations=("relu",))
    ratio = {(p.depth, p.residual): p.flow.first_to_last for p in points}
    # Deep plain nets without BatchNorm: early layers get far weaker gradients...
    assert ratio[(56, False)] < 0.1 * ratio[(8, False)]
    # ...while the residual net of the same depth keeps them at the same order.
    assert ratio[(56, True)] > 0.5 * ratio[(8, True)]
    assert ratio[(56, True)] > 10 * ratio[(56, False)]
    with pytest.raises(ValueError, match="depth 12 is not 6n"):
        depth_sweep((12,))


def _deep_sigmoid_net(n: int = 7):
    """A 6n+2-layer plain sigmoid net without BatchNorm: its input-side gradients vanish
    to about 1e-30, far below what a float32 square can hold (1e-38)."""
    import dataclasses

    from core.presets import cifar_resnet
    from core.spec import Defaults

    spec = cifar_resnet(n, residual=False, widths=(4, 8, 8), input_shape=(3, 8, 8), num_classes=2)
    return dataclasses.replace(spec, defaults=Defaults(batch_norm=False, activation="sigmoid"))


def _float64_norms(net, x, y) -> dict[str, float]:
    """The oracle: the same net and batch in float64, gradients by plain autograd."""
    twin = copy.deepcopy(net).double().train()
    loss = F.cross_entropy(twin(x.double()), y)
    names, params = zip(*twin.named_parameters(), strict=True)
    sums: dict[str, float] = {}
    for name, g in zip(names, torch.autograd.grad(loss, params), strict=True):
        sums[layer_of(name)] = sums.get(layer_of(name), 0.0) + g.square().sum().item()
    return {k: math.sqrt(v) for k, v in sums.items()}


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize(
    ("device", "rel"),
    [("cpu", 1e-3), pytest.param("cuda", 5e-2, marks=[pytest.mark.gpu, CUDA])],  # TF32 convs
)
def test_vanishing_gradients_read_their_true_size_not_zero(device, rel):
    spec, data = _deep_sigmoid_net(), separable_data()
    net = build(spec, seed=0)
    oracle_net = copy.deepcopy(net)
    cfg = TrainConfig(steps=2, batch_size=32, device=device, precision="fp32")
    trainer = Trainer(net, data, cfg)
    record = trainer.step()
    x, y = (t.cpu() for t in trainer.last_batch)
    truth = _float64_norms(oracle_net, x, y)
    assert min(truth.values()) < 1e-25  # squares below float32's smallest number
    for layer, norm in zip(trainer.layers, record.grad_norms, strict=True):
        assert norm == pytest.approx(truth[layer], rel=rel), layer
    flow = grad_flow_at_init(spec, x, y, seed=0)  # the analysis page's reading, too
    for layer, norm in zip(flow.layers, flow.norms, strict=True):
        assert norm == pytest.approx(truth[layer], rel=1e-3), layer
