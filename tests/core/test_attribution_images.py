"""Which images to explain (core.attribution.images): misclassified first, by class, at
random; and several networks' maps of the same images."""

import numpy as np
import pytest
import torch

from core.attribution import (
    AttributionError,
    AttributionRequest,
    attribute,
    choose_images,
    explain_images,
    pick_images,
)
from tests.core.test_attribution import squares, trained

pytestmark = pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU:UserWarning")


def test_misclassified_images_come_first():
    labels = np.array([0, 1, 0, 1, 0, 1])
    probs = np.array([[0.9, 0.1], [0.1, 0.9], [0.2, 0.8], [0.2, 0.8], [0.8, 0.2], [0.6, 0.4]])
    picked = pick_images(probs, labels, "misclassified", 4)  # 2 and 5 are wrong
    assert list(picked[:2]) == [2, 5]  # more confidently wrong first: 0.2 on the truth, 0.4
    assert list(picked[2:]) == [3, 4]  # then the least confident right ones


def test_misclassified_counts_the_nets_that_get_it_wrong():
    labels = np.array([0, 0, 0])
    a = np.array([[0.1, 0.9], [0.4, 0.6], [0.9, 0.1]])  # wrong: 0, 1
    b = np.array([[0.9, 0.1], [0.45, 0.55], [0.9, 0.1]])  # wrong: 1
    assert list(pick_images(np.stack([a, b]), labels, "misclassified", 3)) == [1, 0, 2]


def test_by_class_gives_only_that_class_and_random_is_seeded():
    labels = np.arange(40) % 4
    picked = pick_images(None, labels, "class", 8, seed=3, cls=2)
    assert len(picked) == 8 and (labels[picked] == 2).all()
    assert len(pick_images(None, labels, "class", 50, cls=1)) == 10  # capped at what exists
    one, two = (pick_images(None, labels, "random", 5, seed=7) for _ in range(2))
    assert list(one) == list(two) and len(set(one)) == 5
    assert list(pick_images(None, labels, "random", 5, seed=8)) != list(one)
    with pytest.raises(ValueError, match="unknown way to pick"):
        pick_images(None, labels, "best", 3)


def test_choose_images_scores_every_network_and_names_a_missing_class():
    net, _ = trained()
    x, labels, _ = squares(40, seed=16)
    idx = choose_images({"a": net, "b": net}, x, labels, "misclassified", 5)
    with torch.no_grad():
        probs = net(x).softmax(1)
    assert list(idx) == list(pick_images(torch.stack([probs, probs]), labels, "misclassified", 5))
    with pytest.raises(AttributionError, match="no image of class ring; choose another class"):
        choose_images({"a": net}, x, labels % 3, "class", 2, cls=3, classes=("a", "b", "c", "ring"))


def test_explain_images_gives_each_network_the_maps_attribute_gives():
    net, _ = trained()
    x, labels, _ = squares(3, seed=17)
    request = AttributionRequest(method="saliency")
    seen = []
    found = explain_images(
        {"one": net, "two": net},
        x,
        labels,
        np.array([4, 5, 6]),
        request,
        progress=lambda share, message: seen.append(share),
    )
    assert list(found.results) == ["one", "two"] and list(found.indices) == [4, 5, 6]
    torch.testing.assert_close(found.results["two"].maps, attribute(net, x, request).maps)
    assert torch.equal(found.labels, labels) and torch.equal(found.images, x)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0) and seen[0] <= 0.5
