"""Localisation scores and the sanity check against answers known in advance: hand-made
maps, scipy's Spearman, models that read one quadrant, and Adebayo et al.'s controls."""

import copy
import functools
import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.attribution import (
    AttributionError,
    AttributionRequest,
    Cancelled,
    attribute,
    frozen_copy,
)
from core.attribution_quality import (
    INDEPENDENCE_THRESHOLD,
    compare_localisation,
    edge_detector,
    nonzero_pixels,
    pointing_game,
    randomisation_stages,
    randomise_,
    sanity_check,
    score_localisation,
    share_inside,
    spearman,
)
from core.data import DataRequest, load
from core.model import build
from core.presets import PRESETS
from tests.core.test_attribution import (
    BOTTOM_RIGHT,
    TOP_LEFT,
    Quadrant,
    quadrant_mask,
    squares,
    trained,
)
from tests.core.test_model import every_kind_spec

pytestmark = pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU:UserWarning")


# --- localisation metrics on maps worked out by hand -----------------------------------


def test_share_inside_counts_positive_attribution_only():
    maps = torch.tensor([[[1.0, -2.0], [3.0, 0.0]], [[-1.0, -1.0], [0.0, 0.0]]])
    masks = torch.tensor([[[True, True], [False, False]]] * 2)
    shares = share_inside(maps, masks)
    assert shares[0].item() == pytest.approx(1 / 4)  # 1 of the 1 + 3 positive is inside
    assert shares[1].isnan()  # nothing positive: no share to speak of
    score = score_localisation(maps, masks, tolerance=0)
    assert score.share_inside == pytest.approx(0.25)
    assert score.without_positive == 1 and score.images == 2
    assert score.mask_area == pytest.approx(0.5)


def test_pointing_game_hits_the_peak_with_the_given_tolerance():
    maps = torch.zeros(3, 5, 5)
    maps[0, 0, 0] = 1.0  # peak on the object
    maps[1, 0, 2] = 1.0  # peak two pixels from the object
    masks = torch.zeros(3, 5, 5, dtype=torch.bool)
    masks[:, 0, 0] = True
    assert pointing_game(maps, masks, tolerance=0).tolist() == [True, False, False]
    assert pointing_game(maps, masks, tolerance=2).tolist() == [True, True, False]  # map 2 is flat
    assert score_localisation(maps, masks, tolerance=2).hit_rate == pytest.approx(2 / 3)


def test_metrics_refuse_mismatched_maps_and_masks():
    with pytest.raises(AttributionError, match=r"must both be \(N, H, W\)"):
        share_inside(torch.zeros(2, 4, 4), torch.zeros(2, 4, 5, dtype=torch.bool))
    with pytest.raises(AttributionError, match="masks true on the object"):
        pointing_game(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4))  # float, not bool


def test_the_object_a_model_reads_gets_the_attribution_and_any_other_place_none():
    """Two models with known answers, side by side, as the page shows plain and residual."""
    models = {
        "reads top left": frozen_copy(Quadrant(*TOP_LEFT)),
        "reads bottom right": frozen_copy(Quadrant(*BOTTOM_RIGHT)),
    }
    x = 0.1 + 0.9 * torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    masks = quadrant_mask(6, TOP_LEFT)
    requests = [
        AttributionRequest(method="saliency", target="class", target_class=0),
        AttributionRequest(method="integrated_gradients", target="class", target_class=0),
        AttributionRequest(method="occlusion", target="class", target_class=0, occlusion_stride=4),
    ]
    seen = []
    rows = compare_localisation(
        models, x, masks, requests, tolerance=0, progress=lambda s, m: seen.append(s)
    )
    assert [(r.model, r.method) for r in rows] == [(m, r.label) for m in models for r in requests]
    for row in rows:
        expected = 1.0 if row.model == "reads top left" else 0.0
        assert row.score.share_inside == pytest.approx(expected, abs=1e-6), row
        assert row.score.hit_rate == expected, row
        assert row.score.mask_area == pytest.approx(0.25)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)


def test_a_trained_net_points_at_the_square_it_classifies():
    """Not a fixed answer, but a floor: on a net that learned where the square is, Integrated
    Gradients puts more than the square's share of the image on it."""
    net, _ = trained()
    x, labels, masks = squares(16, seed=12)
    request = AttributionRequest(method="integrated_gradients", target="true", n_steps=16)
    (row,) = compare_localisation({"tiny": net}, x, masks, [request], labels=labels)
    assert row.score.share_inside > 3 * row.score.mask_area
    assert row.score.hit_rate > 0.8


# --- Spearman ---------------------------------------------------------------------------


def test_spearman_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 6, (4, 50), generator=g).float()  # many ties
    b = a + torch.randint(0, 4, (4, 50), generator=g).float()
    ours = spearman(a, b)
    theirs = [stats.spearmanr(a[i], b[i]).statistic for i in range(4)]
    torch.testing.assert_close(ours, torch.tensor(theirs, dtype=torch.float64))
    assert spearman(a, a).tolist() == pytest.approx([1.0] * 4)
    assert spearman(a, -a).tolist() == pytest.approx([-1.0] * 4)
    assert spearman(torch.ones(1, 5), a[:1, :5]).isnan().all()  # a flat map has no ranking


# --- the sanity check -------------------------------------------------------------------


def test_randomisation_runs_from_the_head_down_and_skips_blocks_without_weights():
    net = build(every_kind_spec(), seed=0)
    names = [name for name, _ in randomisation_stages(net)]
    # blocks 5, 6 and 7 are pool, dropout and flatten: nothing to randomise
    assert names == [
        *("head", "block 9", "block 8", "block 4", "block 3", "block 2", "block 1"),
        "block 0",
        "stem",
    ]


def test_randomise_replaces_every_weight_of_one_part_and_nothing_else():
    net = frozen_copy(build(every_kind_spec(), seed=0))
    with torch.no_grad():  # as after training: BatchNorm far from its start
        net.blocks[3].bn1.running_mean.fill_(3.0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    randomise_(net.blocks[3], torch.Generator().manual_seed(0))
    after = net.state_dict()
    for key, value in after.items():
        if not key.startswith("blocks.3.") or "num_batches" in key:
            assert torch.equal(value, before[key]), key
        elif key.endswith("conv1.weight") or key.endswith("conv.weight"):
            assert not torch.equal(value, before[key]), key
            fan_in = value[0].numel()
            assert value.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.25)
    assert torch.equal(after["blocks.3.bn1.running_mean"], torch.zeros(16))
    again = frozen_copy(build(every_kind_spec(), seed=0))
    randomise_(again.blocks[3], torch.Generator().manual_seed(0))
    assert torch.equal(again.blocks[3].conv1.weight, after["blocks.3.conv1.weight"])


@pytest.fixture(scope="module")
def sanity():
    net, _ = trained()
    x, _, _ = squares(6, seed=13)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    seen = []
    report = sanity_check(
        net,
        x,
        [AttributionRequest(method="saliency"), AttributionRequest(method="guided_backprop")],
        progress=lambda share, message: seen.append(share),
    )
    return net, before, report, seen


def test_sanity_check_separates_a_map_that_ignores_the_model(sanity):
    """Adebayo et al.'s control: an edge detector's map never changes, so it is flagged;
    saliency's map falls apart as the weights become random, so it is not."""
    _, _, report, _ = sanity
    assert report.stages == ("original", "head", "block 2", "block 1", "block 0", "stem")
    curves = {c.method: c for c in report.curves}
    edge = curves["Edge detector (ignores the model)"]
    saliency = curves["Saliency"]
    assert edge.correlation == pytest.approx((1.0,) * 6)
    assert not edge.depends_on_model
    assert saliency.correlation[0] == 1.0
    assert min(saliency.correlation) < 0.4 < INDEPENDENCE_THRESHOLD
    assert saliency.depends_on_model
    assert all(c.seconds_per_image > 0 for c in report.curves)


def test_guided_backprop_hardly_notices_a_random_head(sanity):
    """Adebayo et al. 2018, Fig. 2: Guided Backprop's map survives randomising the top
    layers, where a plain gradient does not. (On this three-block net it does change once
    the convolutions below are random, so it is not flagged as independent.)"""
    _, _, report, _ = sanity
    curves = {c.method: c.correlation for c in report.curves}
    head = report.stages.index("head")
    assert curves["Guided Backprop"][head] > 0.8
    assert curves["Saliency"][head] < 0.7


def test_sanity_check_leaves_the_callers_model_alone_and_reports_progress(sanity):
    net, before, _, seen = sanity
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)


def test_sanity_check_can_be_cancelled_and_needs_weights():
    net, _ = trained()
    x, _, _ = squares(2, seed=14)
    stop = threading.Event()
    shares = []

    def progress(share, message):
        shares.append(share)
        if share >= 0.5:
            stop.set()

    with pytest.raises(Cancelled, match="sanity check stopped"):
        sanity_check(net, x, [AttributionRequest()], progress=progress, cancel=stop)
    assert max(shares) < 0.75  # stopped soon after the click, not at the end
    with pytest.raises(AttributionError, match="no weights to randomise"):
        sanity_check(frozen_copy(Quadrant(*TOP_LEFT)), x, [AttributionRequest()])


def test_edge_detector_is_sobel_magnitude():
    x = torch.zeros(1, 3, 6, 6)
    x[..., 3:] = 1.0  # a vertical edge between columns 2 and 3
    edges = edge_detector(nn.Identity(), x, torch.zeros(1))
    assert edges.shape == (1, 6, 6)
    assert (edges[0, :, 2:4] == 4.0).all() and (edges[0, :, [0, 1, 4, 5]] == 0).all()


def test_a_normalising_copy_randomises_the_network_behind_it():
    net, _ = trained()
    pixels = frozen_copy(net, mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2))
    names = [name for name, _ in randomisation_stages(pixels)]
    assert names == ["head", "block 2", "block 1", "block 0", "stem"]


# --- the sanity check on images with black pixels (issue 10) ----------------------------


def _average_ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks 1..P, ties sharing their mean: counted pairwise, independent of `spearman`."""
    less = (v[None, :] < v[:, None]).sum(1).double()
    same = (v[None, :] == v[:, None]).sum(1).double()
    return less + (same + 1) / 2


def _spearman_on(a: torch.Tensor, b: torch.Tensor) -> float:
    ra, rb = _average_ranks(a.double()), _average_ranks(b.double())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return ((ra * rb).sum() / (ra.norm() * rb.norm())).item()


def test_spearman_over_kept_pixels_matches_a_pairwise_count():
    g = torch.Generator().manual_seed(4)
    a = torch.randint(0, 5, (3, 6, 6), generator=g).float()
    b = a + torch.rand(3, 6, 6, generator=g)
    keep = torch.rand(3, 6, 6, generator=g) > 0.4
    keep[2] = False
    keep[2, 0, :1] = True  # one pixel: no ranking
    ours = spearman(a, b, keep)
    for i in range(2):
        assert ours[i].item() == pytest.approx(_spearman_on(a[i][keep[i]], b[i][keep[i]]))
    assert ours[2].isnan()
    torch.testing.assert_close(spearman(a, b, torch.ones_like(keep)), spearman(a, b))


def test_black_pixels_are_those_black_in_every_channel():
    x = torch.zeros(1, 3, 2, 2)
    x[0, 1, 0, 0] = 0.5  # green only: not black
    assert nonzero_pixels(x).tolist() == [[[True, False], [False, False]]]


def test_images_without_black_pixels_score_the_same_both_ways(sanity):
    _, _, report, _ = sanity
    assert report.black_share == 0.0
    for curve in report.curves:
        assert curve.correlation_nonzero == curve.correlation
        assert curve.depends_on_model_nonzero == curve.depends_on_model


@functools.cache
def _digits_net():
    """A ResNet-8 trained briefly on the 8x8 digits, behind its normalisation."""
    data = load(DataRequest(name="digits"))
    spec = PRESETS["resnet8_narrow"].spec(input_shape=data.input_shape, num_classes=10)
    net = build(spec, seed=0)
    mean, std = torch.tensor(data.mean).view(1, -1, 1, 1), torch.tensor(data.std).view(1, -1, 1, 1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    order = torch.Generator().manual_seed(0)
    for _ in range(80):
        idx = torch.randint(0, len(data.x_train), (64,), generator=order)
        loss = F.cross_entropy(net((data.x_train[idx] - mean) / std), data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return frozen_copy(net, mean=data.mean, std=data.std), data, loss.item()


def test_on_digits_integrated_gradients_keeps_its_black_pixels_not_the_model():
    """Issue 10: IG from a black baseline is 0 on black pixels whatever the weights, which
    holds its rank correlation up over the whole image; over the non-black pixels it falls.
    The reported scores are recomputed here from the maps, with a pairwise rank count."""
    model, data, loss = _digits_net()
    assert loss < 0.5, "the net did not learn the digits; the test would prove nothing"
    x = data.x_val[:4]
    keep = (x != 0).any(1)
    assert 0.2 < 1 - keep.float().mean() < 0.8  # digits: a good share of black pixels
    request = AttributionRequest(method="integrated_gradients", n_steps=32)
    report = sanity_check(model, x, [request], controls={})
    (curve,) = report.curves
    assert report.black_share == pytest.approx(1 - keep.float().mean().item())
    assert curve.correlation_nonzero[-1] < curve.correlation[-1] - 0.2

    original = attribute(model, x, request)
    work = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(0)  # sanity_check's default seed, the same stages
    for _, module in randomisation_stages(work):
        randomise_(module, gen)
    random = attribute(work, x, request, targets=original.targets)
    a, b = original.maps.abs(), random.maps.abs()
    full = sum(_spearman_on(a[i].flatten(), b[i].flatten()) for i in range(4)) / 4
    masked = sum(_spearman_on(a[i][keep[i]], b[i][keep[i]]) for i in range(4)) / 4
    assert curve.correlation[-1] == pytest.approx(full, abs=1e-6)
    assert curve.correlation_nonzero[-1] == pytest.approx(masked, abs=1e-6)
