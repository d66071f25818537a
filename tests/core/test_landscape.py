"""The loss landscape against independent computations: F.cross_entropy on the same
images at the centre and at a corner, filter norms of the directions, and the initial
and final nets at the two ends of the interpolation."""

import copy
import threading

import pytest
import torch

from core.inside import Cancelled, InsideError, train_subset
from core.landscape import (
    LandscapeSettings,
    compare,
    interpolation,
    random_direction,
    slice_1d,
    slice_2d,
)
from core.model import build
from tests.core.helpers import tiny_spec
from tests.core.inside_helpers import (
    assert_same_weights,
    normalised,
    oracle_loss_and_accuracy,
    twin_fixtures,
    weights,
)

ALL = 96  # every training image of noise_data(): the oracle needs no subset


data, resnet, plain = twin_fixtures(8)


def test_the_centre_is_the_trained_net_and_a_corner_is_the_moved_net(data, resnet):
    before, was_training = weights(resnet), resnet.training
    s = LandscapeSettings(grid=3, images=ALL, seed=5)
    surface = slice_2d(resnet, data, s)
    x, y = normalised(data, "train")
    loss, accuracy = oracle_loss_and_accuracy(copy.deepcopy(resnet), x, y)
    assert surface.alphas == surface.betas == (-1.0, 0.0, 1.0)
    assert surface.losses[1][1] == pytest.approx(loss, rel=1e-5)
    assert surface.accuracies[1][1] == accuracy
    # the corner (alpha, beta) = (1, -1), built by hand from the two directions
    d1, d2 = random_direction(resnet, 5, 0), random_direction(resnet, 5, 1)
    moved = copy.deepcopy(resnet)
    with torch.no_grad():
        for p, a, b in zip(moved.parameters(), d1, d2, strict=True):
            p.add_(a).sub_(b)
    assert surface.losses[0][2] == pytest.approx(oracle_loss_and_accuracy(moved, x, y)[0], rel=1e-4)
    flat = [v for row in surface.losses for v in row]
    assert min(flat) < max(flat) and len(set(flat)) == 9  # the grid really moves
    assert_same_weights(resnet, before)
    assert resnet.training == was_training
    line = slice_1d(resnet, data, s)
    assert line.losses[1] == pytest.approx(loss, rel=1e-5) and line.images == ALL


def test_directions_are_filter_normalised_and_zero_on_batchnorm_and_biases(resnet):
    direction = random_direction(resnet, seed=1)
    named = list(resnet.named_parameters())
    assert len(direction) == len(named)
    for (name, w), d in zip(named, direction, strict=True):
        assert d.shape == w.shape
        if w.dim() == 1:  # BatchNorm weights and biases, the head's bias
            assert torch.count_nonzero(d) == 0, name
            continue
        dims = tuple(range(1, w.dim()))
        norm = torch.linalg.vector_norm
        torch.testing.assert_close(norm(d, dim=dims), norm(w.detach(), dim=dims), rtol=1e-5, atol=0)
        assert torch.count_nonzero(d) == d.numel(), name
    assert any(w.dim() == 1 for _, w in named) and any(w.dim() == 4 for _, w in named)
    assert not torch.equal(direction[0], random_direction(resnet, seed=2)[0])


def test_twins_share_their_raw_directions(resnet, plain):
    def unit(d):  # per filter: the raw draw's direction, without the weights' norms
        return d / d.flatten(1).norm(dim=1).view(-1, *[1] * (d.dim() - 1))

    res, pln = random_direction(resnet, seed=4), random_direction(plain, seed=4)
    names = [n for n, _ in resnet.named_parameters()]
    assert names == [n for n, _ in plain.named_parameters()]
    for name, a, b in zip(names, res, pln, strict=True):
        if a.dim() > 1:
            torch.testing.assert_close(unit(a), unit(b), rtol=1e-5, atol=1e-6, msg=name)


def test_the_interpolation_ends_at_the_initial_and_the_final_net(data, resnet):
    initial = build(tiny_spec("resnet8_narrow", classes=4), seed=0)  # the fixture's start
    before = weights(resnet)
    s = LandscapeSettings(grid=3, low=0.0, high=1.0, images=ALL)
    line = interpolation(initial, resnet, data, s)
    x, y = normalised(data, "train")
    assert line.alphas == (0.0, 0.5, 1.0)
    assert line.losses[0] == pytest.approx(oracle_loss_and_accuracy(initial, x, y)[0], rel=1e-5)
    end = oracle_loss_and_accuracy(copy.deepcopy(resnet), x, y)[0]
    assert line.losses[2] == pytest.approx(end, rel=1e-5)
    assert line.losses[1] not in (line.losses[0], line.losses[2])
    assert_same_weights(resnet, before)  # BatchNorm's running statistics included
    other = build(tiny_spec("resnet14_narrow", classes=4), seed=0)
    with pytest.raises(InsideError) as e:
        interpolation(other, resnet, data, s)
    assert str(e.value) == (
        "interpolation: the initial and the final weights belong to different networks; "
        "take both from one run"
    )


def test_twins_on_one_grid_with_progress_and_cancel(data, resnet, plain):
    before = weights(resnet)
    shares = []
    s = LandscapeSettings(grid=3, images=32)
    out = compare(
        {"plain": plain, "residual": resnet},
        data,
        s,
        dims=1,
        progress=lambda share, m: shares.append(share),
    )
    assert list(out) == ["plain", "residual"]
    assert out["plain"].alphas == out["residual"].alphas and out["plain"].images == 32
    assert out["plain"].losses != out["residual"].losses
    assert shares == sorted(shares) and len(shares) == 6 and shares[-1] == pytest.approx(1.0)
    flag = threading.Event()

    def stop_after_two(share, message):
        if share >= 2 / 9:
            flag.set()

    with pytest.raises(Cancelled, match="loss landscape stopped at your request after 2 of 9"):
        slice_2d(resnet, data, s, progress=stop_after_two, cancel=flag)
    assert_same_weights(resnet, before)
    assert resnet.training


def test_the_image_subset_is_fixed_by_the_seed(data):
    a, b = train_subset(data, 20, 3), train_subset(data, 20, 3)
    assert torch.equal(a, b) and len(set(a.tolist())) == 20
    assert a.tolist() == sorted(a.tolist()) and a.min() >= 0 and a.max() < ALL
    assert not torch.equal(a, train_subset(data, 20, 4))
    assert len(train_subset(data, 10_000, 0)) == ALL


def test_settings_refuse_what_cannot_work():
    with pytest.raises(InsideError) as e:
        LandscapeSettings(low=1.0, high=-1.0)
    assert str(e.value) == (
        "loss landscape: the range runs from 1 to -1; make its low end smaller than its high "
        "end, e.g. -1 to 1"
    )
    with pytest.raises(
        InsideError, match=r"the grid \(points per axis\) must be a whole number from 2 to 101"
    ):
        LandscapeSettings(grid=1)
    with pytest.raises(InsideError, match="the number of images must be a whole number"):
        LandscapeSettings(images=0)
