"""Lesson 9's transfer stage: the `transfer:` line's grammar and refusals, the class
subsets it trains on (oracle: scikit-learn's own digits), and the race it sets up (the
transferred net starts from the source net's trained body, the scratch net from the seed)."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from core.data import DataError, DataRequest, load
from core.lesson_transfer import (
    SCRATCH,
    SOURCE,
    TRANSFERRED,
    parse_transfer,
    race_arms,
    stage_plans,
)
from core.lessons import LESSON_DIR, LessonError, parse_lesson
from core.model import build

LINE = "net=resnet8 source=0-4 target=5-9 subset=20 source_steps=3 steps=2 batch=10"


def test_a_class_subset_keeps_those_images_relabelled_in_its_order():
    from sklearn.datasets import load_digits

    digits = load_digits()
    keep = (7, 2, 9)
    d = load(DataRequest(name="digits", classes=keep))
    assert d.classes == ("7", "2", "9")
    assert len(d.y_train) + len(d.y_val) == int(np.isin(digits.target, keep).sum())
    # every image is one of the kept class's own images (8x8, 0..16 scaled to 0..1)
    originals = torch.from_numpy(digits.images).float().div(16)
    for x, y in zip(d.x_train[:40], d.y_train[:40], strict=True):
        same = (originals == x[0]).flatten(1).all(1)
        assert same.any() and {int(t) for t in digits.target[same.numpy()]} == {keep[int(y)]}


def test_a_class_subset_round_trips_through_json_and_hashes():
    request = DataRequest(name="digits", classes=(5, 6, 7), subset=30)
    back = DataRequest(**json.loads(json.dumps(dataclasses.asdict(request))))
    assert back == request and hash(back) == hash(request) and back.classes == (5, 6, 7)


@pytest.mark.parametrize("classes", [(3,), (1, 1), (-1, 2), ("a", "b")])
def test_a_class_subset_needs_two_different_class_numbers(classes):
    with pytest.raises(DataError, match="the class subset must be two or more different"):
        DataRequest(name="digits", classes=classes)


def test_a_class_the_data_lack_is_refused_with_the_range():
    with pytest.raises(DataError, match=r"names class 12, but the data have 10 classes \(0 to 9\)"):
        load(DataRequest(name="digits", classes=(0, 12)))


def test_the_transfer_line_reads_with_defaults():
    stage = parse_transfer("target=5,7,9 subset=60", "x.md")
    assert stage.net == "resnet20" and stage.source == (0, 1, 2, 3, 4)
    assert stage.target == (5, 7, 9) and stage.subset == 60 and stage.mode == "finetune"
    assert stage.target_request().classes == (5, 7, 9)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("speed=3", "'speed=3' is not one of the transfer settings"),
        ("net=resnet21", "net=resnet21 is no plainN or resnetN"),
        ("source=4", "'4' is not two or more classes of digits (0 to 9)"),
        ("target=5-12", "'5-12' is not two or more classes of digits (0 to 9)"),
        ("mode=all", "mode 'all' is not available; choose one of: head, finetune"),
        ("subset=20 batch=32", "batch=32 is more than the 20 target images"),
        ("steps=0", "steps must be a whole number from 1 to 1,000, got 0"),
    ],
)
def test_a_wrong_transfer_line_is_named(line, message):
    with pytest.raises(LessonError) as e:
        parse_transfer(line, "09-x.md")
    assert message in str(e.value) and "09-x.md, transfer" in str(e.value)


def test_claims_may_name_the_transfer_arms_only_when_there_is_a_stage():
    text = (LESSON_DIR / "09-generalise.md").read_text(encoding="utf-8")
    lesson = parse_lesson(text, "09-generalise", 9)
    assert lesson.transfer is not None
    without = "\n".join(line for line in text.split("\n") if not line.startswith("transfer:"))
    with pytest.raises(LessonError, match="names 'transferred', which is no arm"):
        parse_lesson(without, "09-generalise", 9)


def test_the_race_starts_from_every_source_weight_and_the_scratch_net_from_the_seed():
    stage = parse_transfer(LINE, "x.md")
    (source_plan, moved_plan, fresh_plan) = stage_plans(stage, "cpu")
    assert [source_plan[0], moved_plan[0], fresh_plan[0]] == [SOURCE, TRANSFERRED, SCRATCH]
    source = build(source_plan[1], seed=5)  # stands for a trained net: other weights
    target = load(stage.target_request())
    moved, fresh = race_arms(stage, source, target)
    assert (moved.name, fresh.name) == (TRANSFERRED, SCRATCH) and fresh.init is None
    # five classes to five: the head is kept too; its outputs now mean 5 to 9
    assert moved.init.state.keys() == source.state_dict().keys()
    for key, value in source.state_dict().items():
        assert torch.equal(moved.init.state[key], value), key
    seeded = build(fresh.spec, seed=stage.seed).state_dict()
    assert not torch.equal(seeded["head.fc.weight"], source.state_dict()["head.fc.weight"])
    assert moved.init.frozen == ()  # finetune: every layer trains
    assert moved.spec.num_classes == 5 == moved_plan[1].num_classes
