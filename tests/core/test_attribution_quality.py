"""Localisation scores and the sanity check against answers known in advance: hand-made
maps, scipy's Spearman, models that read one quadrant, and Adebayo et al.'s controls."""

import threading

import pytest
import torch
from torch import nn

from core.attribution import AttributionError, AttributionRequest, Cancelled, frozen_copy
from core.attribution_quality import (
    INDEPENDENCE_THRESHOLD,
    compare_localisation,
    edge_detector,
    pointing_game,
    randomisation_stages,
    randomise_,
    sanity_check,
    score_localisation,
    share_inside,
    spearman,
)
from core.model import build
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
