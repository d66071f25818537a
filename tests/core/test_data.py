"""Shapes, digits, splits, batches, augmentation and the shared cache (core/data.py)."""

from __future__ import annotations

import dataclasses
import threading

import pytest
import torch
import torch.nn.functional as F

from core import data as data_module
from core import shapes_data
from core.data import (
    DATASETS,
    DataError,
    DataRequest,
    TensorData,
    augment,
    clear_cache,
    data_root,
    load,
)
from core.errors import ExplainedError
from core.limits import DATA_LIMITS
from core.shapes_data import SHAPE_CLASSES, make_shapes


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


# --- Shapes -------------------------------------------------------------------------------


def test_shapes_same_seed_gives_the_same_bits_and_another_seed_does_not():
    a = make_shapes(300, size=16, seed=5)
    b = make_shapes(300, size=16, seed=5)
    c = make_shapes(300, size=16, seed=6)
    assert all(torch.equal(s, t) for s, t in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])


def test_shapes_first_chunks_do_not_depend_on_how_many_follow(monkeypatch):
    monkeypatch.setattr(shapes_data, "_CHUNK_PIXELS", 40 * 16 * 16)  # 40 images a chunk
    small = make_shapes(80, size=16, seed=2)
    large = make_shapes(100, size=16, seed=2)
    assert all(torch.equal(s, t[:80]) for s, t in zip(small, large, strict=True))
    assert not torch.equal(small[0][:40], make_shapes(40, size=16, seed=3)[0])


def test_shapes_bits_do_not_depend_on_the_thread_count():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = make_shapes(200, size=32, seed=3)
        torch.set_num_threads(2)
        two = make_shapes(200, size=32, seed=3)
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(s, t) for s, t in zip(one, two, strict=True))


@pytest.mark.parametrize("size", [16, 32, 64])
def test_shapes_types_ranges_and_balance(size):
    x, y, masks = make_shapes(601, size=size, seed=0)
    assert x.shape == (601, 3, size, size) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and masks.shape == (601, size, size) and masks.dtype == torch.bool
    assert x.min() >= 0 and x.max() <= 1
    counts = torch.bincount(y, minlength=len(SHAPE_CLASSES))
    assert counts.sum() == 601 and counts.max() - counts.min() <= 1


def test_masks_cover_exactly_the_object_colour():
    # Without noise or texture an image has two colours: the mask must be one of them.
    x, _, masks = make_shapes(120, size=32, seed=1, noise=0, texture=0)
    for img, mask in zip(x, masks, strict=True):
        inside, outside = img[:, mask], img[:, ~mask]  # (3, pixels)
        assert inside.shape[1] > 0 and outside.shape[1] > 0
        assert torch.equal(inside, inside[:, :1].expand_as(inside))
        # The background passes through the bilinear texture even at zero amplitude.
        assert torch.allclose(outside, outside[:, :1].expand_as(outside), atol=1e-6)
        assert (inside[:, 0] - outside[:, 0]).abs().min() >= 0.35 - 1e-6


def test_masks_have_the_geometry_of_their_class():
    _, y, masks = make_shapes(300, size=32, seed=3)
    rows = torch.arange(32, dtype=torch.float32)
    for label, mask in zip(y.tolist(), masks, strict=True):
        m = mask.float()
        # The whole shape lies inside the image, one pixel clear of the edge.
        assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
        cy = int(((m.sum(1) * rows).sum() / m.sum()).round())
        cx = int(((m.sum(0) * rows).sum() / m.sum()).round())
        name = SHAPE_CLASSES[label]
        if name == "ring":
            assert not mask[cy, cx], "a ring has a hole at its centre"
        elif name in ("circle", "square", "triangle", "cross", "stripes"):
            assert mask[cy, cx], f"a {name} covers its centre"


def test_shapes_dataset_keeps_masks_with_their_images():
    d = load(DataRequest(name="shapes", size=16, n=120, seed=4))
    x, _, masks = make_shapes(120, size=16, seed=4)
    assert len(d.y_train) == 96 and len(d.y_val) == 24  # val_fraction 0.2
    for part_x, part_m in ((d.x_train, d.masks_train), (d.x_val, d.masks_val)):
        match = torch.cdist(part_x.flatten(1), x.flatten(1)).argmin(1)
        assert torch.equal(part_x, x[match])
        assert torch.equal(part_m, masks[match])
    assert len(set(match.tolist())) == 24
    assert torch.bincount(d.y_val).tolist() == [4] * 6  # the split is class-balanced


# --- requests and loading -----------------------------------------------------------------


_DIGEST = "an uploaded dataset is named by the 64-character SHA-256 that import_upload returns"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"name": "imagenet"},
            "the dataset 'imagenet' is not available; choose one of: shapes, digits, mnist, "
            "fashion_mnist, cifar10, upload",
        ),
        ({"size": 4}, "the image size (px) must be a whole number from 8 to 128, got 4"),
        ({"size": 32.0}, "the image size (px) must be a whole number from 8 to 128, got 32.0"),
        (
            {"name": "mnist", "n": 500},
            "n sets how many Shapes to draw; for mnist use subset instead",
        ),
        (
            {"n": 3},
            "the number of Shapes must be a whole number from 12 to 60,000, got 3; "
            "draw at least two of each of the six shapes",
        ),
        ({"n": 70_000}, "the number of Shapes must be a whole number from 12 to 60,000, got 70000"),
        ({"subset": 5}, "the training subset must be a whole number from 10 to 60,000, got 5"),
        ({"val_fraction": 0.9}, "the validation share must be a number from 0.05 to 0.5, got 0.9"),
        ({"seed": -1}, "the seed must be a whole number from 0 to 2,147,483,647, got -1"),
        ({"seed": True}, "the seed must be a whole number from 0 to 2,147,483,647, got True"),
        ({"name": "upload"}, f"{_DIGEST}, and only name='upload' takes one"),
        (
            {"name": "upload", "upload": "../../etc/passwd"},
            f"{_DIGEST}, and only name='upload' takes one",
        ),
        ({"upload": "a" * 64}, f"{_DIGEST}, and only name='upload' takes one"),
    ],
)
def test_bad_requests_say_what_to_do(kwargs, message):
    with pytest.raises(DataError) as caught:
        DataRequest(**kwargs)
    assert str(caught.value) == message
    assert isinstance(caught.value, ExplainedError)


def test_same_seed_same_tensors_another_seed_another_split():
    a = load(DataRequest(name="digits", seed=1))
    clear_cache()
    b = load(DataRequest(name="digits", seed=1))
    c = load(DataRequest(name="digits", seed=2))
    assert a is not b and torch.equal(a.x_train, b.x_train) and torch.equal(a.y_val, b.y_val)
    assert not torch.equal(a.y_train, c.y_train)


def test_digits_are_offline_and_scaled_to_0_1():
    d = load(DataRequest(name="digits"))
    assert d.classes == tuple("0123456789") and d.input_shape == (1, 8, 8)
    assert len(d.y_train) + len(d.y_val) == 1797 and len(d.y_val) == round(0.2 * 1797)
    assert d.x_train.min() == 0 and d.x_train.max() == 1
    assert d.masks_train is None
    up = load(DataRequest(name="digits", size=32))
    assert up.input_shape == (1, 32, 32) and torch.equal(up.y_train, d.y_train)


def test_subset_is_class_proportional_and_shrinks_validation_alike():
    d = load(DataRequest(name="digits", subset=100, seed=3))
    assert torch.bincount(d.y_train).tolist() == [10] * 10
    assert len(d.y_val) == 25  # 100 * 0.2 / 0.8
    assert torch.bincount(d.y_val, minlength=10).min() >= 2


def test_mean_and_std_come_from_the_training_images():
    d = load(DataRequest(name="shapes", n=60, size=16))
    # The oracle: per-channel statistics in float64 over the training images alone.
    x = d.x_train.double()
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3), correction=0)
    assert torch.allclose(torch.tensor(d.mean, dtype=torch.float64), mean, atol=1e-6)
    assert torch.allclose(torch.tensor(d.std, dtype=torch.float64), std, atol=1e-6)
    assert not torch.allclose(mean, d.x_val.double().mean(dim=(0, 2, 3)), atol=1e-6)
    # What the trainer does with them, (x - mean) / std, gives zero mean and unit spread.
    z = (x - mean.view(1, 3, 1, 1)) / torch.tensor(d.std, dtype=torch.float64).view(1, 3, 1, 1)
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(
        z.std(dim=(0, 2, 3), correction=0), torch.ones(3, dtype=torch.float64), atol=1e-5
    )
    assert d.input_shape == (3, 16, 16) and d.num_classes == 6


def test_over_the_memory_cap_is_refused_before_drawing():
    tiny = dataclasses.replace(DATA_LIMITS, max_tensor_bytes=1_000_000)
    with pytest.raises(DataError, match="ask for a subset or a smaller size"):
        load(DataRequest(name="shapes", n=1000, size=64), limits=tiny)


def test_data_root_from_argument_then_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RESNET_EXPLORER_DATA", str(tmp_path / "env"))
    assert data_root() == (tmp_path / "env").resolve()
    assert data_root(tmp_path / "arg") == (tmp_path / "arg").resolve()
    monkeypatch.delenv("RESNET_EXPLORER_DATA")
    assert data_root().parts[-3:] == (".cache", "resnet-explorer", "data")


# --- the cache ----------------------------------------------------------------------------


def test_second_load_is_the_same_object_and_native_size_shares_the_key(tmp_path):
    a = load(DataRequest(name="shapes", n=60))
    assert load(DataRequest(name="shapes", n=60, size=32)) is a
    assert load(DataRequest(name="shapes", n=60), root=tmp_path) is not a


def test_users_asking_at_once_load_once(monkeypatch):
    calls = []
    real = data_module._load_uncached

    def counting(*args):
        calls.append(threading.get_ident())
        return real(*args)

    monkeypatch.setattr(data_module, "_load_uncached", counting)
    start = threading.Barrier(4)
    results = []

    def user():
        start.wait()
        results.append(load(DataRequest(name="shapes", n=2000, size=16)))

    threads = [threading.Thread(target=user) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 4
    assert all(r is results[0] for r in results)


def test_cache_forgets_the_oldest_over_its_byte_cap():
    small = dataclasses.replace(DATA_LIMITS, max_cache_bytes=1_500_000)
    a = load(DataRequest(name="shapes", n=600, size=16, seed=1), limits=small)  # ~0.6 MB
    load(DataRequest(name="shapes", n=600, size=16, seed=2), limits=small)
    load(DataRequest(name="shapes", n=600, size=16, seed=3), limits=small)
    assert load(DataRequest(name="shapes", n=600, size=16, seed=1), limits=small) is not a


# --- batches and augmentation ---------------------------------------------------------------


def _toy(n: int = 10) -> TensorData:
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    y = torch.arange(n) % 3
    return TensorData(
        name="toy",
        classes=("a", "b", "c"),
        x_train=x,
        y_train=y,
        x_val=x[:2],
        y_val=y[:2],
        mean=(0.0,),
        std=(1.0,),
    )


def test_an_epoch_visits_every_training_image_once_in_a_seeded_order():
    d = _toy()
    seen = [x[:, 0, 0, 0] for x, _ in d.batches(4, generator=torch.Generator().manual_seed(7))]
    assert [len(s) for s in seen] == [4, 4, 2]
    order = torch.cat(seen).long()
    assert sorted(order.tolist()) == list(range(10)) and order.tolist() != list(range(10))
    again = [x[:, 0, 0, 0] for x, _ in d.batches(4, generator=torch.Generator().manual_seed(7))]
    assert torch.equal(torch.cat(again).long(), order)
    for x, y in d.batches(4, generator=torch.Generator().manual_seed(7)):
        assert torch.equal(y, x[:, 0, 0, 0].long() % 3)  # labels travel with their images
    dropped = list(d.batches(4, generator=torch.Generator().manual_seed(7), drop_last=True))
    assert [len(y) for _, y in dropped] == [4, 4]


def test_augment_gives_a_padded_crop_or_its_mirror_of_each_image():
    x = torch.rand(16, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    out = augment(x, generator=torch.Generator().manual_seed(1), padding=2)
    padded = F.pad(x, (2, 2, 2, 2))
    flips = 0
    for i in range(16):
        crops = [padded[i, :, r : r + 6, c : c + 6] for r in range(5) for c in range(5)]
        plain = any(torch.equal(out[i], crop) for crop in crops)
        mirrored = any(torch.equal(out[i], crop.flip(-1)) for crop in crops)
        assert plain or mirrored
        flips += mirrored and not plain
    assert 0 < flips < 16
    again = augment(x, generator=torch.Generator().manual_seed(1), padding=2)
    assert torch.equal(out, again)
    assert not torch.equal(out, x)
    assert torch.equal(augment(x, generator=torch.Generator(), padding=0, flip=False), x)


def test_every_dataset_is_described_and_loads_at_its_native_size_by_default():
    assert set(DATASETS) == {"shapes", "digits", "mnist", "fashion_mnist", "cifar10", "upload"}
    assert {k: v.native_size for k, v in DATASETS.items()} == {
        "shapes": 32,
        "digits": 8,
        "mnist": 28,
        "fashion_mnist": 28,
        "cifar10": 32,
        "upload": 32,
    }
    assert load(DataRequest(name="digits")).input_shape == (1, 8, 8)
