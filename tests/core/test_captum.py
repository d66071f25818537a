"""Captum's own attribution classes run on every block kind (no in-place ops, one
activation module per use, an out-of-place residual add)."""

import pytest
import torch
from captum.attr import DeepLift, IntegratedGradients, LayerAttribution, LayerGradCam, Saliency

from core.model import build
from tests.core.test_model import every_kind_spec


@pytest.fixture(scope="module")
def net_and_input():
    spec = every_kind_spec()
    net = build(spec, seed=0).eval()
    x = torch.rand(2, *spec.input_shape).requires_grad_()  # Captum wants inputs that do
    return net, x


@pytest.mark.parametrize("method", [Saliency, IntegratedGradients, DeepLift])
@pytest.mark.parametrize("skip", [True, False])
def test_input_attribution_methods_run_on_every_block_kind(net_and_input, method, skip):
    net, x = net_and_input
    net.set_skip(skip)
    target = net(x).argmax(1)
    attr = method(net).attribute(x, target=target)
    assert attr.shape == x.shape
    assert torch.isfinite(attr).all()
    assert attr.abs().sum() > 0


@pytest.mark.parametrize("method", [IntegratedGradients, DeepLift])
def test_completeness_holds_through_every_block_kind(net_and_input, method):
    """Attributions sum to f(x) - f(baseline): the maths DeepLift and IG promise."""
    net, x = net_and_input
    net.set_skip(True)
    kwargs = {"n_steps": 200} if method is IntegratedGradients else {}
    attr, delta = method(net).attribute(x, target=0, return_convergence_delta=True, **kwargs)
    with torch.no_grad():
        gap = net(x)[:, 0] - net(torch.zeros_like(x))[:, 0]
    torch.testing.assert_close(attr.sum(dim=(1, 2, 3)), gap, rtol=0.02, atol=2e-3)
    assert delta.abs().max() < 2e-3


@pytest.mark.parametrize("index", [0, 1, 2, 3, 4])  # conv, basic x3, bottleneck
def test_gradcam_runs_on_every_convolutional_and_residual_block(net_and_input, index):
    net, x = net_and_input
    net.set_skip(True)
    cam = LayerGradCam(net, net.blocks[index]).attribute(x, target=1)
    assert cam.shape[:2] == (2, 1)
    up = LayerAttribution.interpolate(cam, x.shape[-2:])
    assert up.shape == (2, 1, *x.shape[-2:])
    assert torch.isfinite(up).all()


def test_every_layer_module_is_used_once_per_forward(net_and_input):
    """DeepLift keeps state per module: a ReLU shared by two places would break it."""
    net, x = net_and_input
    net.set_skip(True)
    calls = {}
    hooks = [
        m.register_forward_hook(lambda m, i, o, n=name: calls.__setitem__(n, calls.get(n, 0) + 1))
        for name, m in net.named_modules()
        if name and not list(m.children())
    ]
    net(x)
    for h in hooks:
        h.remove()
    assert calls, "no layer ran"
    assert max(calls.values()) == 1, {n: c for n, c in calls.items() if c > 1}
