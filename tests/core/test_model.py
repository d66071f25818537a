"""The built model against independent oracles: real forward shapes, hook-counted costs,
autograd, torchvision's own ResNets and He et al.'s parameter table."""

import pytest
import torch
from torch import nn

from core.blocks import ZeroPadShortcut as ZeroPad
from core.model import build, summary
from core.presets import PRESETS, cifar_resnet, imagenet_resnet
from core.spec import (
    BasicSpec,
    BottleneckSpec,
    ConvSpec,
    DenseResidualSpec,
    DenseSpec,
    DropoutSpec,
    FlattenSpec,
    NetSpec,
    PoolSpec,
    SpecError,
    StemSpec,
)

SMALL = (3, 32, 32)  # ImageNet presets are checked at this size to keep tests fast


def every_kind_spec(**defaults) -> NetSpec:
    """One network holding every block kind and every shortcut."""
    from core.spec import Defaults

    return NetSpec(
        name="every kind",
        input_shape=(3, 16, 16),
        num_classes=4,
        stem=StemSpec(out_channels=8),
        blocks=(
            ConvSpec(out_channels=8),
            BasicSpec(out_channels=8),  # identity
            BasicSpec(out_channels=16, stride=2, shortcut="zero_pad"),
            BasicSpec(out_channels=16, stride=1, shortcut="projection"),
            BottleneckSpec(width=8, stride=2),  # auto -> projection, 32 channels
            PoolSpec(mode="avg", kernel_size=2),
            DropoutSpec(p=0.1),
            FlattenSpec(),
            DenseSpec(out_features=32),
            DenseResidualSpec(width=32, bottleneck=16, dropout=0.1),
        ),
        defaults=Defaults(**defaults),
    )


def _small(key):
    preset = PRESETS[key]
    shape = SMALL if preset.input_shape[1] > 64 else None
    return preset.spec(input_shape=shape)


def _leaf_outputs(net, x):
    """Forward with hooks: each block's output shape and every layer's output size."""
    shapes, elements = {}, []
    hooks = [
        b.register_forward_hook(lambda m, i, o, k=k: shapes.__setitem__(k, tuple(o.shape[1:])))
        for k, b in enumerate(net.blocks)
    ]
    for m in net.modules():
        if not list(m.children()) and not isinstance(m, (nn.Identity, nn.Flatten, ZeroPad)):
            hooks.append(m.register_forward_hook(lambda m, i, o: elements.append(o[0].numel())))
    macs = []
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(
                m.register_forward_hook(
                    lambda m, i, o: macs.append(
                        o[0].numel()
                        * m.in_channels
                        * m.kernel_size[0]
                        * m.kernel_size[1]
                        // m.groups
                    )
                )
            )
        elif isinstance(m, nn.Linear):
            hooks.append(
                m.register_forward_hook(lambda m, i, o: macs.append(m.in_features * m.out_features))
            )
    out = net(x)
    for h in hooks:
        h.remove()
    return out, shapes, sum(elements), sum(macs)


@pytest.mark.parametrize("key", sorted(PRESETS))
def test_plan_matches_the_real_forward(key):
    spec = _small(key)
    plan = spec.validate()
    net = build(spec, seed=0).eval()
    out, shapes, elements, macs = _leaf_outputs(net, torch.randn(2, *spec.input_shape))
    assert out.shape == (2, spec.num_classes)
    assert [shapes[i] for i in range(len(plan.blocks))] == [b.out_shape for b in plan.blocks]
    assert plan.params == sum(p.numel() for p in net.parameters())
    assert plan.activations == elements
    assert plan.macs == macs


def test_every_kind_plan_matches_the_real_forward():
    spec = every_kind_spec()
    plan = spec.validate()
    net = build(spec, seed=0)
    _, shapes, elements, macs = _leaf_outputs(net, torch.randn(3, *spec.input_shape))
    assert [shapes[i] for i in range(len(plan.blocks))] == [b.out_shape for b in plan.blocks]
    assert plan.params == sum(p.numel() for p in net.parameters())
    assert (plan.activations, plan.macs) == (elements, macs)
    assert [b.shortcut for b in plan.blocks if b.skip is not None] == [
        "identity",
        "zero_pad",
        "projection",
        "projection",
        "identity",
    ]


def _check_backward(net, spec, batch=2):
    net.train()
    out = net(torch.randn(batch, *spec.input_shape))
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    unused = {f"blocks.{i}.shortcut" for i, on in net.skips().items() if not on}
    for name, p in net.named_parameters():
        if any(name.startswith(u) for u in unused):
            assert p.grad is None, f"{name} is off but got a gradient"
            continue
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a NaN/Inf gradient"


@pytest.mark.parametrize("key", sorted(PRESETS))
def test_backward_reaches_every_parameter(key):
    spec = _small(key)
    _check_backward(build(spec, seed=1), spec)


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid", "gelu"])
@pytest.mark.parametrize("init", ["kaiming", "xavier", "default", "small_normal"])
@pytest.mark.parametrize("bn", [True, False])
def test_backward_on_every_block_kind(act, init, bn):
    spec = every_kind_spec(activation=act, init=init, batch_norm=bn, zero_init_last_bn=bn)
    _check_backward(build(spec, seed=2), spec, batch=3)


def test_plain_twin_has_the_weights_and_function_of_the_residual_net_with_skips_off():
    res, plain = PRESETS["resnet20"].spec(), PRESETS["plain20"].spec()
    a, b = build(res, seed=7).eval(), build(plain, seed=7).eval()
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    x = torch.randn(4, *res.input_shape)
    assert not torch.allclose(a(x), b(x))
    a.set_skip(False)
    assert torch.equal(a(x), b(x))
    a.set_skip(True, block=3)
    b.set_skip(True, block=3)
    assert torch.equal(a(x), b(x))


def test_toggling_mid_training_changes_no_weight_or_optimizer_state():
    spec = PRESETS["resnet8_narrow"].spec()
    net = build(spec, seed=3)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(8, *spec.input_shape), torch.randint(0, 10, (8,))
    for _ in range(2):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    momenta = [opt.state[p]["momentum_buffer"].clone() for p in net.parameters()]
    net.set_skip(False)
    net.set_skip(True, block=1)
    assert net.skips() == {0: False, 1: True, 2: False}
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(
        torch.equal(m, opt.state[p]["momentum_buffer"])
        for m, p in zip(momenta, net.parameters(), strict=True)
    )
    assert net.current_spec().blocks[1].skip and not net.current_spec().blocks[0].skip
    assert summary(net).totals["skips on"] == 1


def test_set_skip_refuses_what_cannot_be_done_and_changes_nothing():
    spec = NetSpec(
        input_shape=(3, 8, 8),
        num_classes=2,
        blocks=(
            ConvSpec(out_channels=4),
            BasicSpec(out_channels=4),
            BasicSpec(out_channels=8, stride=2, shortcut="identity", skip=False),
        ),
    )
    net = build(spec, seed=0)
    net.set_skip(False, block=1)
    with pytest.raises(
        SpecError,
        match="block 2: this block changes shape and was built "
        "without a shortcut; set its shortcut to 'projection'",
    ):
        net.set_skip(True)
    assert net.skips() == {1: False, 2: False}  # all-or-nothing
    with pytest.raises(SpecError, match="block 0: has no skip connection"):
        net.set_skip(True, block=0)
    with pytest.raises(SpecError, match="block 9: has no skip connection"):
        net.set_skip(True, block=9)


def test_same_seed_same_weights_and_other_seed_other_weights():
    spec = every_kind_spec()
    a, b, c = build(spec, seed=5), build(spec, seed=5), build(spec, seed=6)
    torch.manual_seed(123)  # the global RNG must not matter
    d = build(spec, seed=5)
    for (k, va), vb, vd in zip(
        a.state_dict().items(), b.state_dict().values(), d.state_dict().values(), strict=True
    ):
        assert torch.equal(va, vb) and torch.equal(va, vd), k
    assert any(
        not torch.equal(va, vc)
        for va, vc in zip(a.state_dict().values(), c.state_dict().values(), strict=True)
    )


@pytest.mark.parametrize(
    ("init", "expected_std"),
    [
        ("small_normal", lambda fan_in, fan_out: 0.01),
        ("kaiming", lambda fan_in, fan_out: (2 / fan_out) ** 0.5),  # conv: fan_out, relu gain
        ("xavier", lambda fan_in, fan_out: (2 / (fan_in + fan_out)) ** 0.5 * 2**0.5),
        ("default", lambda fan_in, fan_out: (1 / (3 * fan_in)) ** 0.5),  # U(+-1/sqrt(fan_in))
    ],
)
def test_init_schemes_have_their_published_scale(init, expected_std):
    spec = NetSpec(
        input_shape=(3, 32, 32), num_classes=2, blocks=(ConvSpec(out_channels=128, init=init),)
    )
    w = build(spec, seed=0).blocks[0].conv.weight
    fan_in, fan_out = 3 * 9, 128 * 9
    assert w.std().item() == pytest.approx(expected_std(fan_in, fan_out), rel=0.08)


def test_zero_init_last_bn_starts_each_block_as_identity_plus_relu():
    from core.spec import Defaults

    spec = NetSpec(
        input_shape=(4, 8, 8),
        num_classes=2,
        blocks=(BasicSpec(out_channels=4),),
        defaults=Defaults(zero_init_last_bn=True),
    )
    block = build(spec, seed=0).blocks[0].eval()
    x = torch.randn(2, 4, 8, 8)
    assert torch.equal(block(x), torch.relu(x))


# --- against published numbers and torchvision -------------------------------------------


@pytest.mark.parametrize(("n", "millions"), [(3, 0.27), (5, 0.46), (7, 0.66), (9, 0.85), (18, 1.7)])
def test_cifar_parameter_counts_match_he_et_al_table_6(n, millions):
    for residual in (True, False):
        params = cifar_resnet(n, residual=residual).validate().params
        digits = 1 if millions >= 1 else 2
        assert round(params / 1e6, digits) == millions


def _torchvision_name(name: str, depths) -> str:
    """Our module path -> torchvision's, e.g. blocks.3.shortcut.conv -> layer2.1.downsample.0"""
    parts = name.split(".")
    if parts[0] == "stem":
        return {"conv": "conv1", "bn": "bn1"}[parts[1]] + "." + ".".join(parts[2:])
    if parts[0] == "head":
        return "fc." + parts[2]
    index, rest = int(parts[1]), parts[2:]
    stage = 0
    while index >= depths[stage]:
        index -= depths[stage]
        stage += 1
    if rest[0] == "shortcut":
        rest = ["downsample", {"conv": "0", "bn": "1"}[rest[1]], *rest[2:]]
    return ".".join([f"layer{stage + 1}", str(index), *rest])


@pytest.mark.parametrize(
    ("depth", "depths", "gmacs"),
    [(18, (2, 2, 2, 2), 1.814), (34, (3, 4, 6, 3), 3.664), (50, (3, 4, 6, 3), 4.089)],
)
def test_imagenet_presets_are_torchvisions_resnets(depth, depths, gmacs):
    import torchvision

    tv = getattr(torchvision.models, f"resnet{depth}")().eval()
    spec = imagenet_resnet(depth)
    plan = spec.validate()
    weights = getattr(torchvision.models, f"ResNet{depth}_Weights").IMAGENET1K_V1
    assert plan.params == sum(p.numel() for p in tv.parameters())
    assert plan.params == weights.meta["num_params"]
    assert round(plan.macs / 1e9, 3) == weights.meta["_ops"]  # torchvision's published GFLOPS
    ours = build(spec, seed=0).eval()
    tv_state = tv.state_dict()
    mapped = {k: tv_state[_torchvision_name(k, depths)] for k in ours.state_dict()}
    assert len(mapped) == len(tv_state)
    ours.load_state_dict(mapped)
    x = torch.randn(1, 3, 96, 96)  # any size works with the global pool; small is fast
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x), rtol=1e-4, atol=1e-4)


def test_summary_rows_and_totals():
    s = summary(PRESETS["resnet20"].spec(), batch_size=128)
    rows = s.rows
    assert rows[0]["block"] == "stem" and rows[-1]["block"] == "head"
    assert rows[1]["output"] == "16x32x32" and rows[-1]["output"] == "10 features"
    assert [r["skip"] for r in rows[1:-1]].count("zero-pad (A)") == 2
    assert [r["skip"] for r in rows[1:-1]].count("identity") == 7
    assert s.totals["params"] == sum(r["params"] for r in rows) == 269_722
    assert s.totals["residual blocks"] == s.totals["skips on"] == 9
    plain = summary(PRESETS["plain20"].spec())
    assert plain.totals["skips on"] == 0 and plain.rows[1]["skip"] == "off (identity)"
    # activation memory: elements x batch x 4 bytes
    assert s.totals["activation MB"] == pytest.approx(
        s.plan.activations * 128 * 4 / 2**20, abs=0.01
    )
