"""Errors per class against scikit-learn on the same predictions, and the net's own
predictions against a plain forward pass."""

import copy
import threading

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix, recall_score

from core.confusion import confusion, confusion_from
from core.inside import Cancelled, InsideError
from core.model import build
from tests.core.helpers import tiny_spec
from tests.core.inside_helpers import (
    CLASSES,
    assert_same_weights,
    normalised,
    twin_fixtures,
    weights,
)

data, resnet, plain = twin_fixtures(8)


def test_counts_rates_and_recall_equal_scikit_learns():
    rng = np.random.default_rng(0)
    true = rng.choice([0, 1, 3], size=200)  # class 2 has no images
    predicted = np.where(rng.random(200) < 0.6, true, rng.integers(0, 4, size=200))
    confidence = rng.random(200)
    c = confusion_from(true, predicted, confidence, CLASSES, mistakes=10)
    labels = list(range(4))
    expected = confusion_matrix(true, predicted, labels=labels)
    assert np.array_equal(np.array(c.counts), expected)
    rows = expected.sum(1, keepdims=True)
    np.testing.assert_allclose(np.array(c.rates), np.divide(expected, np.maximum(rows, 1)))
    assert c.rates[2] == (0.0, 0.0, 0.0, 0.0) and c.per_class[2] is None
    recall = recall_score(true, predicted, labels=labels, average=None, zero_division=0)
    for k in (0, 1, 3):
        assert c.per_class[k] == pytest.approx(recall[k])
    assert c.images == 200 and c.accuracy == pytest.approx(np.mean(true == predicted))
    wrong = [i for i in range(200) if true[i] != predicted[i]]
    ranked = sorted(wrong, key=lambda i: (-confidence[i], i))[:10]
    assert [m.index for m in c.mistakes] == ranked
    assert all(m.true != m.predicted for m in c.mistakes)
    assert [m.confidence for m in c.mistakes] == sorted(
        (m.confidence for m in c.mistakes), reverse=True
    )


def test_ties_in_confidence_keep_the_earlier_image_first():
    true, predicted = np.array([0, 1, 0, 1]), np.array([1, 0, 1, 1])
    c = confusion_from(true, predicted, np.array([0.5, 0.9, 0.9, 0.1]), ("a", "b"))
    assert [m.index for m in c.mistakes] == [1, 2, 0]


def test_the_nets_matrix_is_its_own_predictions_counted(data, resnet):
    before = weights(resnet)
    c = confusion(resnet, data, mistakes=5)
    x, y = normalised(data)
    model = copy.deepcopy(resnet).eval()
    with torch.no_grad():
        probs = model(x).softmax(1)
    predicted = probs.argmax(1)
    expected = confusion_matrix(y.numpy(), predicted.numpy(), labels=list(range(4)))
    assert np.array_equal(np.array(c.counts), expected)
    assert c.accuracy == pytest.approx((predicted == y).float().mean().item())
    assert 0 < len(c.mistakes) <= 5 and c.name == resnet.spec.name
    for m in c.mistakes:
        assert m.true == y[m.index] and m.predicted == predicted[m.index]
        assert m.confidence == pytest.approx(probs[m.index].max().item(), rel=1e-5)
    assert_same_weights(resnet, before)
    assert resnet.training
    assert confusion(resnet, data, images=10).images == 10


def test_cancel_and_refusals(data, resnet):
    flag = threading.Event()
    flag.set()
    with pytest.raises(Cancelled, match="errors per class stopped at your request"):
        confusion(resnet, data, cancel=flag)
    with pytest.raises(InsideError) as e:
        confusion(resnet, data, mistakes=-1)
    assert str(e.value) == (
        "errors per class: the number of mistakes shown must be a whole number from 0 to "
        "1,000, got -1"
    )
    with pytest.raises(InsideError, match="'noise' has 4 classes, but the network tells 2"):
        confusion(build(tiny_spec("resnet8_narrow"), seed=0), data)
