"""The lesion study against hand-built nets: a removed residual block is a net whose block
returns shortcut(x); a removed plain block is a net with nn.Identity in its place."""

import copy
import dataclasses
import math
import threading

import pytest
import torch
from torch import nn

from core import lesion
from core.inside import Cancelled, InsideError
from core.lesion import IDENTITY, SHORTCUT, lesion_study, lesioned, removable
from core.limits import INSIDE_LIMITS
from tests.core.inside_helpers import (
    assert_same_weights,
    noise_data,
    normalised,
    oracle_loss_and_accuracy,
    twin_fixtures,
    weights,
)


class ShortcutOnly(nn.Module):
    """The independent stand-in for a removed residual block."""

    def __init__(self, shortcut: nn.Module):
        super().__init__()
        self.shortcut = shortcut

    def forward(self, x):
        return self.shortcut(x)


data, resnet, plain = twin_fixtures(14)


def hand_built(net, blocks, stand_in):
    model = copy.deepcopy(net)
    for i in blocks:
        model.blocks[i] = stand_in(model.blocks[i])
    return model


def test_each_residual_lesion_equals_a_net_whose_block_returns_its_shortcut(data, resnet):
    before, was_training = weights(resnet), resnet.training
    study = lesion_study(resnet, data, draws=0)
    x, y = normalised(data)
    assert [r.block for r in study.removable] == list(range(6))
    assert {r.how for r in study.removable} == {SHORTCUT} and study.kept == ()
    assert study.baseline == oracle_loss_and_accuracy(copy.deepcopy(resnet), x, y)[1]
    for r, accuracy in zip(study.removable, study.single, strict=True):
        model = hand_built(resnet, [r.block], lambda b: ShortcutOnly(b.shortcut))
        assert accuracy == oracle_loss_and_accuracy(model, x, y)[1], r.block
    assert len(set(study.single)) > 1  # the data make lesions differ: the test can fail
    assert study.images == len(y) and study.k_draws == ()
    assert_same_weights(resnet, before)
    assert resnet.training == was_training


def test_a_plain_net_loses_only_blocks_of_one_shape_and_says_which_it_keeps(data, plain):
    found, kept = removable(plain)
    assert [(r.block, r.how) for r in found] == [(i, IDENTITY) for i in (0, 1, 3, 5)]
    assert [k.block for k in kept] == [2, 4]
    assert "from 8x8x8 to 16x4x4" in kept[0].reason and "skip is off" in kept[0].reason
    study = lesion_study(plain, data, draws=0)
    x, y = normalised(data)
    for r, accuracy in zip(study.removable, study.single, strict=True):
        model = hand_built(plain, [r.block], lambda b: nn.Identity())
        assert accuracy == oracle_loss_and_accuracy(model, x, y)[1], r.block


def test_the_k_curve_enumerates_small_cases_and_matches_removing_everything(data, resnet):
    study = lesion_study(resnet, data, draws=6, seed=3)
    assert study.ks == tuple(range(7))
    assert [len(d) for d in study.k_draws] == [6, 6, 6, 6, 6, 1]  # C(6,k) > 6 for k = 2..4
    # k = 1 with draws >= n: every single lesion exactly once, so the mean is theirs
    assert study.k_mean[1] == pytest.approx(sum(study.single) / 6, abs=1e-12)
    x, y = normalised(data)
    everything = hand_built(resnet, range(6), lambda b: ShortcutOnly(b.shortcut))
    assert study.k_draws[-1] == (oracle_loss_and_accuracy(everything, x, y)[1],)
    assert study.k_std[0] == 0 and study.k_std[-1] == 0
    m = sum(study.k_draws[2]) / 6
    expected = math.sqrt(sum((a - m) ** 2 for a in study.k_draws[2]) / 6)
    assert study.k_std[3] == pytest.approx(expected)
    again = lesion_study(resnet, data, draws=6, seed=3)
    assert again.k_draws == study.k_draws  # the draws come from the seed alone


def test_lesioned_context_gives_the_hand_built_logits_and_restores_the_net(data, resnet):
    x, _ = normalised(data)
    resnet.eval()
    try:
        with torch.no_grad():
            clean = resnet(x)
            model = hand_built(resnet, [1, 4], lambda b: ShortcutOnly(b.shortcut)).eval()
            with lesioned(resnet, [4, 1]):
                torch.testing.assert_close(resnet(x), model(x), rtol=0, atol=0)
            assert torch.equal(resnet(x), clean)
            with pytest.raises(RuntimeError, match="inside"), lesioned(resnet, [2]):
                raise RuntimeError("inside")
            assert torch.equal(resnet(x), clean)
            assert all("forward" not in vars(b) for b in resnet.blocks)
    finally:
        resnet.train()


def test_cancel_stops_the_study_and_leaves_the_net_as_it_was(data, resnet):
    before = weights(resnet)
    flag, shares = threading.Event(), []

    def progress(share, message):
        shares.append(share)
        if len(shares) == 3:
            flag.set()

    with pytest.raises(Cancelled, match="lesion study stopped at your request"):
        lesion_study(resnet, data, progress=progress, cancel=flag)
    assert len(shares) == 3 and shares == sorted(shares)
    assert_same_weights(resnet, before)
    assert resnet.training
    full = []
    lesion_study(resnet, data, draws=2, progress=lambda s, m: full.append(s))
    assert full == sorted(full) and full[-1] == pytest.approx(1.0)


def test_refusals_say_what_to_change(data, resnet, plain):
    with pytest.raises(InsideError) as e:
        lesion_study(resnet, data, images=0)
    assert str(e.value) == (
        "lesion study: the number of images must be a whole number from 1 to 100,000, got 0"
    )
    small = noise_data(size=4)
    with pytest.raises(InsideError, match="are 3x4x4, but the network takes 3x8x8"):
        lesion_study(resnet, small)
    with pytest.raises(InsideError) as e, lesioned(plain, [2]):
        pass
    assert str(e.value).startswith("block 2: cannot be removed")
    assert "choose one of the blocks [0, 1, 3, 5]" in str(e.value)


def test_a_study_of_more_lesioned_nets_than_the_cap_is_refused(data, resnet, monkeypatch):
    monkeypatch.setattr(lesion, "CAPS", dataclasses.replace(INSIDE_LIMITS, max_lesion_sets=7))
    assert len(removable(resnet)[0]) == 6  # ResNet-14: 6 blocks, 6 single lesions
    lesion_study(resnet, data, images=8, draws=0)  # 6 lesioned nets: within the cap
    with pytest.raises(InsideError) as e:
        lesion_study(resnet, data, images=8, draws=2)
    assert str(e.value).startswith("lesion study: 6 blocks with 2 draws for every k are ")
    assert str(e.value).endswith(
        "lesioned nets, more than the 7 one study may evaluate; use fewer draws"
    )
