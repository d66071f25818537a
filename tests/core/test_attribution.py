"""Attribution maps against oracles: IG's completeness on a trained net, GradCAM against CAM
and Captum itself, a model whose answer is known, batching that changes memory only."""

import dataclasses
import functools
import threading

import pytest
import torch
import torch.nn.functional as F
from captum.attr import LayerGradCam, Saliency
from torch import nn

from core.attribution import (
    BASELINES,
    METHODS,
    AttributionError,
    AttributionRequest,
    Cancelled,
    attribute,
    baseline_images,
    feature_map_blocks,
    freeze,
    frozen_copy,
    is_frozen,
    shared_feature_map_blocks,
    unwrap,
)
from core.errors import ExplainedError
from core.model import build
from core.presets import PRESETS
from core.spec import BasicSpec, ConvSpec, NetSpec, StemSpec
from tests.core.test_model import every_kind_spec

pytestmark = pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU:UserWarning")

SIDE = 16


def squares(n: int, seed: int, sq: int = 5):
    """Dark noisy images with one bright square; the class is the square's quadrant.

    Returns images (n, 3, 16, 16) in [0, 1], labels (n,) and masks (n, 16, 16) of the square.
    """
    g = torch.Generator().manual_seed(seed)
    x = 0.1 * torch.rand(n, 3, SIDE, SIDE, generator=g)
    labels = torch.randint(0, 4, (n,), generator=g)
    masks = torch.zeros(n, SIDE, SIDE, dtype=torch.bool)
    half = SIDE // 2
    for i in range(n):
        qy, qx = divmod(int(labels[i]), 2)
        y = qy * half + int(torch.randint(0, half - sq + 1, (1,), generator=g))
        z = qx * half + int(torch.randint(0, half - sq + 1, (1,), generator=g))
        masks[i, y : y + sq, z : z + sq] = True
    colour = 0.5 + 0.5 * torch.rand(n, 3, 1, 1, generator=g)
    return torch.where(masks[:, None], colour.expand_as(x), x), labels, masks


def tiny_spec(residual: bool = True) -> NetSpec:
    return NetSpec(
        name="tiny",
        input_shape=(3, SIDE, SIDE),
        num_classes=4,
        stem=StemSpec(out_channels=8),
        blocks=(
            BasicSpec(out_channels=8, skip=residual),
            BasicSpec(out_channels=16, stride=2, shortcut="zero_pad", skip=residual),
            ConvSpec(out_channels=16),  # the last block before global pooling: CAM's case
        ),
    )


@functools.cache
def trained(residual: bool = True, steps: int = 30):
    """A tiny net trained for a few dozen Adam steps (about a second): (frozen copy, loss)."""
    net = build(tiny_spec(residual), seed=0)
    x, y, _ = squares(512, seed=1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    order = torch.Generator().manual_seed(2)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=order)
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return frozen_copy(net), loss.item()


class Quadrant(nn.Module):
    """Class 0's score is the sum of one quadrant's pixels, class 1's its negative: every
    honest attribution of class 0 lies inside that quadrant."""

    def __init__(self, rows: slice, cols: slice):
        super().__init__()
        self.rows, self.cols = rows, cols

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x[:, :, self.rows, self.cols].sum((1, 2, 3))  # (B, C, H, W) -> (B,)
        return torch.stack([s, -s], 1)  # (B, 2)


TOP_LEFT = (slice(0, 8), slice(0, 8))
BOTTOM_RIGHT = (slice(8, 16), slice(8, 16))


def quadrant_mask(n: int, where) -> torch.Tensor:
    mask = torch.zeros(n, SIDE, SIDE, dtype=torch.bool)
    mask[:, where[0], where[1]] = True
    return mask


FAST = {"n_steps": 8, "gradshap_samples": 4, "occlusion_window": 4, "occlusion_stride": 4}
ALL_REQUESTS = [AttributionRequest(method=m, **FAST) for m in METHODS] + [
    AttributionRequest(method=m, smoothgrad_samples=2, **FAST)
    for m in METHODS
    if METHODS[m].smoothgrad
]


def _nets():
    spec = PRESETS["resnet8_narrow"].spec(input_shape=(3, SIDE, SIDE), num_classes=4)
    return {"every kind": every_kind_spec(), "classroom ResNet-8": spec}


@pytest.fixture(scope="module")
def nets():
    return {name: frozen_copy(build(spec, seed=0)) for name, spec in _nets().items()}


# --- every method on every block kind ---------------------------------------------------


@pytest.mark.parametrize("request_", ALL_REQUESTS, ids=lambda r: r.label)
@pytest.mark.parametrize("skip", [True, False], ids=["residual", "plain"])
@pytest.mark.parametrize("net_name", list(_nets()))
def test_every_method_maps_every_image_on_every_block_kind(nets, net_name, skip, request_):
    net = nets[net_name]
    net.set_skip(skip)
    x = torch.rand(3, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(0))
    result = attribute(net, x, request_)
    assert result.maps.shape == (3, SIDE, SIDE)
    if request_.method == "gradcam":
        assert result.raw.shape[:2] == (3, 1) and result.raw.shape[2] < SIDE
        assert (result.maps >= 0).all()  # the ReLU of Selvaraju et al.
    else:
        assert result.raw.shape == x.shape
        assert result.maps.abs().sum() > 0
    assert torch.isfinite(result.maps).all()
    probs = result.probabilities
    torch.testing.assert_close(probs.sum(1), torch.ones(3))
    assert torch.equal(result.targets, probs.argmax(1))
    plain_ig = request_.method == "integrated_gradients" and not request_.smoothgrad_samples
    assert (result.delta is not None) == plain_ig
    assert result.seconds_per_image > 0


# --- Integrated Gradients: completeness ------------------------------------------------


@pytest.mark.parametrize("baseline", ["black", "blurred"])
def test_integrated_gradients_sum_to_the_score_change_on_a_trained_net(baseline):
    """Completeness (Sundararajan et al. 2017): attributions sum to f(x) - f(baseline)."""
    net, loss = trained()
    assert loss < 0.5, "the tiny net did not learn; the test would prove nothing"
    x, _, _ = squares(4, seed=5)
    request = AttributionRequest(method="integrated_gradients", n_steps=200, baseline=baseline)
    result = attribute(net, x, request)
    t = result.targets[:, None]
    with torch.no_grad():
        gap = (net(x).gather(1, t) - net(baseline_images(x, baseline)).gather(1, t))[:, 0]
    assert gap.abs().mean() > 0.1, "tiny score changes would make completeness trivial"
    total = result.maps.sum((1, 2))
    torch.testing.assert_close(total, gap, rtol=0.03, atol=0.02)
    torch.testing.assert_close(result.delta, total - gap, rtol=0, atol=1e-4)  # honest delta


def test_convergence_delta_shrinks_with_more_steps():
    net, _ = trained()
    x, _, _ = squares(4, seed=6)
    deltas = [
        attribute(net, x, AttributionRequest(method="integrated_gradients", n_steps=n))
        .delta.abs()
        .mean()
        for n in (8, 32, 128)
    ]
    assert deltas[0] > deltas[1] > deltas[2]


def test_baselines_are_what_they_claim():
    x, _, _ = squares(4, seed=3)
    assert torch.equal(baseline_images(x, "black"), torch.zeros_like(x))
    blurred = baseline_images(x, "blurred")

    def variation(t):  # total variation: how much neighbouring pixels differ
        return (t.diff(dim=-1).abs().sum() + t.diff(dim=-2).abs().sum()).item()

    assert variation(blurred) < 0.5 * variation(x)  # noise and sharp edges are gone ...
    torch.testing.assert_close(blurred.mean((2, 3)), x.mean((2, 3)), atol=0.03, rtol=0)
    noise = baseline_images(x, "noise", seed=1)  # ... the colours are kept
    assert x.min() <= noise.min() and noise.max() <= x.max() and noise.std() > 0.1
    assert torch.equal(noise, baseline_images(x, "noise", seed=1))
    assert not torch.equal(noise, baseline_images(x, "noise", seed=2))
    assert set(BASELINES) == {"black", "blurred", "noise"}


# --- GradCAM ---------------------------------------------------------------------------


def test_gradcam_is_cam_when_global_pooling_and_a_linear_layer_follow():
    """Selvaraju et al. 2017, sec. 3.1: with a GAP + linear head, GradCAM is CAM (Zhou et
    al. 2016): ReLU(sum_k w_ck A_k) / (h w), then upsampled bilinearly to the image."""
    net, _ = trained()
    x, _, _ = squares(5, seed=7)
    result = attribute(net, x, AttributionRequest(method="gradcam"))
    assert result.gradcam_block == 2  # None means the last conv block
    feats = {}
    hook = net.blocks[2].register_forward_hook(lambda m, i, o: feats.setdefault("a", o))
    with torch.no_grad():
        net(x)
    hook.remove()
    a = feats["a"]  # (N, 16, 8, 8)
    w = net.head.fc.weight[result.targets]  # (N, 16)
    cam = F.relu((w[:, :, None, None] * a).sum(1, keepdim=True)) / (a.shape[2] * a.shape[3])
    torch.testing.assert_close(result.raw, cam, rtol=1e-4, atol=1e-6)
    up = F.interpolate(cam, size=(SIDE, SIDE), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(result.maps, up, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("block", [0, 1, 2, 3, 4])  # conv, basic x3, bottleneck
def test_gradcam_on_any_block_matches_captum_upsampled(nets, block):
    net = nets["every kind"]
    net.set_skip(True)
    x = torch.rand(2, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(1))
    result = attribute(net, x, AttributionRequest(method="gradcam", gradcam_block=block))
    cam = LayerGradCam(net, net.blocks[block]).attribute(
        x, target=result.targets, relu_attributions=True
    )
    torch.testing.assert_close(result.raw, cam)
    side = {0: 16, 1: 16, 2: 8, 3: 8, 4: 4}[block]  # the block's own resolution
    assert result.raw.shape == (2, 1, side, side) and result.maps.shape == (2, SIDE, SIDE)
    expected = F.interpolate(cam, size=(SIDE, SIDE), mode="bilinear", align_corners=False)
    torch.testing.assert_close(result.maps, expected[:, 0])


@pytest.mark.parametrize(
    "block, words",
    [
        (8, "block 8 is a dense block; choose a convolutional or residual block: 0, 1, 2, 3, 4"),
        (5, "block 5 is a pool block"),
        (10, "block 10 does not exist: this network has blocks 0 to 9"),
    ],
)
def test_gradcam_refuses_blocks_without_feature_maps(nets, block, words):
    x = torch.rand(1, 3, SIDE, SIDE)
    with pytest.raises(AttributionError, match=words):
        attribute(nets["every kind"], x, AttributionRequest(method="gradcam", gradcam_block=block))


def test_gradcam_reads_its_blocks_from_the_spec_on_a_torchvision_layout_preset():
    """ResNet-50 in torchvision's layout (a pooling stem, bottleneck blocks): the blocks
    with feature maps are the conv, basic and bottleneck ones, and the default is the last."""
    spec = PRESETS["resnet50_imagenet"].spec(input_shape=(3, 64, 64), num_classes=4)
    net = frozen_copy(build(spec, seed=0), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    kinds = [b.kind for b in spec.blocks]
    expected = [i for i, k in enumerate(kinds) if k in ("conv", "basic", "bottleneck")]
    assert feature_map_blocks(spec) == expected and expected[-1] == len(kinds) - 1
    assert shared_feature_map_blocks([spec, tiny_spec()]) == [0, 1, 2]
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    result = attribute(net, x, AttributionRequest(method="gradcam"))
    assert result.gradcam_block == expected[-1]
    cam = LayerGradCam(net, net.net.blocks[expected[-1]]).attribute(
        x, target=result.targets, relu_attributions=True
    )
    torch.testing.assert_close(result.raw, cam)


# --- a model whose answer is known -----------------------------------------------------


NOT_GRADCAM = [r for r in ALL_REQUESTS if r.method != "gradcam"]  # GradCAM needs blocks


@pytest.mark.parametrize("request_", NOT_GRADCAM, ids=lambda r: r.label)
def test_a_model_that_reads_one_quadrant_gets_all_its_attribution_there(request_):
    """Occlusion with a 4x4 window and stride 4 lines up with the quadrant; with stride 2
    a window straddling the edge would blur the answer by a pixel, rightly."""
    model = frozen_copy(Quadrant(*TOP_LEFT))
    x = 0.1 + 0.9 * torch.rand(4, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(0))
    result = attribute(model, x, dataclasses.replace(request_, target="class", target_class=0))
    inside = quadrant_mask(4, TOP_LEFT)
    assert (result.maps * inside).sum((1, 2)).min() > 0.5 * 64  # x >= 0.1 on 3 channels
    torch.testing.assert_close(result.maps[~inside], torch.zeros((~inside).sum().item()))


# --- targets ----------------------------------------------------------------------------


def test_targets_predicted_true_or_chosen():
    net, _ = trained()
    x, labels, _ = squares(8, seed=8)
    base = AttributionRequest(method="saliency")
    predicted = attribute(net, x, base)
    wrong = (labels + 1) % 4
    true = attribute(net, x, dataclasses.replace(base, target="true"), labels=wrong)
    chosen = attribute(net, x, dataclasses.replace(base, target="class", target_class=3))
    assert torch.equal(predicted.targets, predicted.probabilities.argmax(1))
    assert torch.equal(true.targets, wrong)
    assert torch.equal(chosen.targets, torch.full((8,), 3))
    assert not torch.allclose(predicted.maps, true.maps)  # the class changes the map
    oracle = Saliency(net).attribute(x.clone().requires_grad_(), target=wrong).sum(1)
    torch.testing.assert_close(true.maps, oracle)


# --- the frozen copy --------------------------------------------------------------------


def test_frozen_copy_leaves_the_training_model_alone():
    net = build(tiny_spec(), seed=0).train()
    net(torch.rand(2, 3, SIDE, SIDE)).sum().backward()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    frozen = frozen_copy(net)
    assert is_frozen(frozen) and not is_frozen(net)
    assert net.training and all(p.requires_grad for p in net.parameters())
    assert all(p.grad is None for p in frozen.parameters())
    x = torch.rand(2, 3, SIDE, SIDE)
    for method in ("guided_backprop", "gradcam", "integrated_gradients"):
        attribute(frozen, x, AttributionRequest(method=method, n_steps=8))
    assert is_frozen(frozen)
    for k, v in frozen.state_dict().items():
        assert torch.equal(v, before[k]), k
    with torch.no_grad():
        frozen.head.fc.weight.add_(1.0)
    assert torch.equal(net.head.fc.weight, before["head.fc.weight"])  # a copy, not a view
    with pytest.raises(AttributionError, match=r"pass frozen_copy\(model\) instead"):
        attribute(net, x, AttributionRequest())


def test_freeze_freezes_a_private_copy_in_place_without_copying_again():
    """The page's networks come from the job manager as copies already: freezing them
    must not copy the weights a second time."""
    net = build(tiny_spec(), seed=0).train()
    net(torch.rand(2, 3, SIDE, SIDE)).sum().backward()
    pixels = freeze(net, mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2))
    assert unwrap(pixels) is net and is_frozen(pixels) and is_frozen(net)
    assert all(p.grad is None for p in net.parameters())
    assert freeze(net) is net


# --- batching, progress, cancel, reproducibility ----------------------------------------


@pytest.mark.parametrize("request_", ALL_REQUESTS, ids=lambda r: r.label)
def test_no_pass_exceeds_the_internal_batch_size_and_batching_changes_nothing(request_):
    net, _ = trained()
    x, _, _ = squares(5, seed=9)
    rows = []
    hook = net.stem.register_forward_pre_hook(lambda m, args: rows.append(len(args[0])))
    samples = 7 if request_.smoothgrad_samples else 0
    small = dataclasses.replace(
        request_, n_steps=20, smoothgrad_samples=samples, internal_batch_size=12
    )
    try:
        narrow = attribute(net, x, small)
        assert max(rows) <= 12, rows
        wide = attribute(net, x, dataclasses.replace(small, internal_batch_size=256))
    finally:
        hook.remove()
    if small.smoothgrad_samples == 0 and small.method != "gradient_shap":  # no noise drawn
        torch.testing.assert_close(narrow.maps, wide.maps, rtol=1e-4, atol=1e-5)


def test_progress_counts_every_pass_and_cancel_stops_the_next():
    net, _ = trained()
    x, _, _ = squares(4, seed=10)
    request = AttributionRequest(method="saliency", smoothgrad_samples=10, internal_batch_size=8)
    seen = []
    attribute(net, x, request, progress=lambda share, msg: seen.append((share, msg)))
    # 4 images in one chunk, 8 // 4 = 2 noisy copies per pass: 5 passes
    assert [round(s, 6) for s, _ in seen] == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert seen[-1][1].endswith("40 of 40 noisy copies")
    stop, calls = threading.Event(), []

    def progress(share, msg):
        calls.append(share)
        stop.set()  # the user presses "stop" after the first pass

    with pytest.raises(Cancelled, match="after 8 of 40"):
        attribute(net, x, request, progress=progress, cancel=stop)
    assert calls == [0.2]


def test_noise_is_reproducible_and_leaves_the_global_generator_alone():
    net, _ = trained()
    x, _, _ = squares(3, seed=11)
    request = AttributionRequest(method="gradient_shap", smoothgrad_samples=0)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = attribute(net, x, request)
    assert torch.equal(torch.rand(3), expected_next)
    again = attribute(net, x, request)
    other = attribute(net, x, dataclasses.replace(request, seed=1))
    assert torch.equal(first.maps, again.maps)
    assert not torch.equal(first.maps, other.maps)


# --- errors a teacher can read aloud ----------------------------------------------------


@pytest.mark.parametrize(
    "settings, words",
    [
        ({"method": "lime"}, "method 'lime' is not available; choose one of: saliency, "),
        ({"n_steps": 0}, "n_steps .* from 1 to 1,000, got 0; 50 is a good start"),
        ({"method": "occlusion", "smoothgrad_samples": 5}, "set smoothgrad_samples to 0"),
        ({"method": "gradient_shap", "smoothgrad_samples": 5}, "already averages"),
        ({"method": "gradient_shap", "gradshap_samples": 100}, "at most internal_batch_size"),
        ({"occlusion_window": 4, "occlusion_stride": 5}, "every pixel gets covered"),
        ({"noise_level": 0}, "noise_level .* above 0"),
        ({"target": "class"}, r"target_class \(the class to explain\) must be a whole"),
        ({"target": "mine"}, "choose one of: predicted, true, class"),
    ],
)
def test_bad_requests_say_what_to_change(settings, words):
    with pytest.raises(AttributionError, match=words):
        AttributionRequest(**settings)
    assert issubclass(AttributionError, ExplainedError) and issubclass(AttributionError, ValueError)


def test_a_refused_setting_reads_as_one_sentence_with_its_meaning_and_a_fix():
    with pytest.raises(AttributionError) as caught:
        AttributionRequest(n_steps=0)
    assert str(caught.value) == (
        "n_steps (the number of steps on the path) must be a whole number from 1 to 1,000, "
        "got 0; 50 is a good start"
    )
    assert caught.value.fix == "50 is a good start"
    with pytest.raises(AttributionError) as caught:
        AttributionRequest(noise_level=0)
    assert str(caught.value).endswith("above 0 and at most 1, got 0; 0.15 is the usual choice")
    with pytest.raises(AttributionError, match=r"from 0 to 1, got 1\.5; 0\.15 is the usual"):
        AttributionRequest(noise_level=1.5)
    with pytest.raises(AttributionError, match="got True"):
        AttributionRequest(noise_level=True)


def test_bad_inputs_say_what_to_change():
    net, _ = trained()
    x = torch.rand(2, 3, SIDE, SIDE)
    cases = [
        (x[0], {}, {}, r"shaped \(N, C, H, W\), got \(3, 16, 16\); .* images.unsqueeze\(0\)"),
        (torch.rand(2, 3, 8, 8), {}, {}, "built for 3x16x16 images but got 3x8x8"),
        (x, {"target": "true"}, {}, "needs the labels; pass labels="),
        (x, {"target": "class", "target_class": 4}, {}, "4 classes, numbered 0 to 3"),
        (x, {"target": "true"}, {"labels": torch.tensor([0, 9])}, "from 0 to 3 per image"),
        (
            x,
            {"method": "occlusion", "occlusion_window": 20, "occlusion_stride": 4},
            {},
            "choose at most 16",
        ),
    ]
    for images, settings, kwargs, words in cases:
        with pytest.raises(AttributionError, match=words):
            attribute(net, images, AttributionRequest(**settings), **kwargs)
    quadrant = frozen_copy(Quadrant(*TOP_LEFT))
    with pytest.raises(AttributionError, match="needs a network built in ResNet Explorer"):
        attribute(quadrant, x, AttributionRequest(method="gradcam"))


def test_every_method_and_setting_explains_itself():
    assert len(METHODS) == 7
    for m in METHODS.values():
        assert m.explanation.endswith(".") and 60 < len(m.explanation) < 260
    label = AttributionRequest(
        method="integrated_gradients", n_steps=32, baseline="blurred", smoothgrad_samples=10
    ).label
    assert label == "Integrated Gradients (32 steps, blurred baseline) + SmoothGrad (10 samples)"


def test_a_copy_that_normalises_its_input_explains_pixels():
    """Runs train on normalised images; given the statistics, the copy takes pixels, so a
    black baseline is black and Input x Gradient multiplies the real pixel values."""
    net, _ = trained()
    mean, std = (0.2, 0.3, 0.4), (0.5, 0.25, 2.0)
    pixels = frozen_copy(net, mean=mean, std=std)
    assert is_frozen(pixels)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    x = squares(3, seed=15)[0]
    result = attribute(pixels, x, AttributionRequest(method="input_x_gradient"))
    xr = x.clone().requires_grad_()
    net((xr - m) / s).gather(1, result.targets[:, None]).sum().backward()  # autograd oracle
    torch.testing.assert_close(result.maps, (xr.grad * x).sum(1))
    ig = attribute(pixels, x, AttributionRequest(method="integrated_gradients", n_steps=200))
    with torch.no_grad():
        t = ig.targets[:, None]
        black = torch.zeros_like(x)
        gap = (net((x - m) / s).gather(1, t) - net((black - m) / s).gather(1, t))[:, 0]
    torch.testing.assert_close(ig.maps.sum((1, 2)), gap, rtol=0.03, atol=0.02)
    assert attribute(pixels, x, AttributionRequest(method="gradcam")).gradcam_block == 2
    with pytest.raises(AttributionError, match="3-channel images but mean and std have 1"):
        frozen_copy(net, mean=(0.5,), std=(0.5,))
    with pytest.raises(AttributionError, match="both mean and std"):
        frozen_copy(net, mean=mean)
