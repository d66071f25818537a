"""MNIST, Fashion-MNIST and CIFAR-10 read by torchvision's own classes from tiny files
written here in each dataset's real on-disk format. Nothing is ever downloaded."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd

from core.data import DataError, DataRequest, clear_cache, load

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
MNIST_FILES += ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def _idx(array: np.ndarray) -> bytes:
    """IDX (LeCun's format): zero, zero, type 0x08 (uint8), rank, big-endian dims, data."""
    head = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    return head + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def _write_mnist(folder, rng, *, gz: bool, n_train: int = 30, n_test: int = 12):
    folder.mkdir(parents=True)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        arrays[split] = (
            rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
            np.arange(n, dtype=np.uint8) % 10,
        )
        for kind, array in zip(("images-idx3", "labels-idx1"), arrays[split], strict=True):
            name, blob = f"{split}-{kind}-ubyte", _idx(array)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(blob))
            else:
                (folder / name).write_bytes(blob)
    return arrays


def test_mnist_loads_from_idx_files_through_torchvision(tmp_path):
    arrays = _write_mnist(tmp_path / "MNIST" / "raw", np.random.default_rng(0), gz=False)
    d = load(DataRequest(name="mnist"), root=tmp_path)
    assert d.classes == tuple(tvd.MNIST.classes)
    assert d.input_shape == (1, 28, 28)
    # No split of its own: train is the training file, validation the test file.
    images, labels = arrays["train"]
    assert torch.equal(d.x_train, torch.from_numpy(images).unsqueeze(1).float() / 255)
    assert torch.equal(d.y_train, torch.from_numpy(labels).long())
    assert torch.equal(d.y_val, torch.from_numpy(arrays["t10k"][1]).long())


def test_fashion_mnist_loads_from_the_gz_files_as_downloaded(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    arrays = _write_mnist(raw, np.random.default_rng(1), gz=True)
    d = load(DataRequest(name="fashion_mnist", size=32), root=tmp_path)
    assert d.classes[0] == "T-shirt/top" and d.input_shape == (1, 32, 32)
    assert torch.equal(d.y_val, torch.from_numpy(arrays["t10k"][1]).long())
    assert all((raw / name).is_file() for name in MNIST_FILES)  # unpacked beside the .gz


def test_subset_of_mnist_keeps_a_proportional_validation_set(tmp_path):
    _write_mnist(tmp_path / "MNIST" / "raw", np.random.default_rng(0), gz=False, n_test=40)
    d = load(DataRequest(name="mnist", subset=20, seed=1), root=tmp_path)
    assert torch.bincount(d.y_train).tolist() == [2] * 10
    assert len(d.y_val) == 10  # at least one per class; 20 * 0.2 / 0.8 = 5 would be fewer


def test_offline_mnist_names_the_missing_files_and_where_they_go(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    _write_mnist(raw, np.random.default_rng(0), gz=False)
    (raw / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError) as info:
        load(DataRequest(name="mnist"), root=tmp_path)
    message = str(info.value)
    assert "MNIST is not on this server" in message and str(raw) in message
    assert "t10k-labels-idx1-ubyte" in message and "train-images" not in message
    assert "download" in message


def test_a_damaged_idx_file_is_reported_not_crashed_on(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    _write_mnist(raw, np.random.default_rng(0), gz=False)
    (raw / "train-images-idx3-ubyte").write_bytes(b"not an idx file")
    with pytest.raises(DataError) as info:
        load(DataRequest(name="mnist"), root=tmp_path)
    assert str(info.value) == (  # and nothing of torchvision's own exception text
        f"the MNIST files in {raw} are there but damaged or not the official "
        "ones; delete them and load the dataset again"
    )


# --- CIFAR-10 ----------------------------------------------------------------------------
#
# torchvision.datasets.CIFAR10 reads the python pickles in cifar-10-batches-py/ only after
# _check_integrity() has compared each file's MD5 (utils.check_integrity -> calculate_md5)
# with the class attributes train_list, test_list and meta. Our files are tiny, so the
# tests set those attributes to the MD5s of the files they wrote: the real class then
# runs unchanged (existence, MD5, unpickling, metadata), and still refuses any other file.

CIFAR_NAMES = ("airplane", "automobile", "bird", "cat", "deer")
CIFAR_NAMES += ("dog", "frog", "horse", "ship", "truck")


def _write_cifar(root, rng, per_batch: int = 6) -> dict[str, np.ndarray]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3 * 32 * 32), dtype=np.uint8)  # rows: R, G, B
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        (folder / name).write_bytes(pickle.dumps({"data": data, "labels": labels}))
        written[name] = data
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(CIFAR_NAMES)}))
    return written


def _trust_written_files(monkeypatch, root):
    folder = root / "cifar-10-batches-py"

    def md5(name: str) -> str:
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    train = [[f"data_batch_{i}", md5(f"data_batch_{i}")] for i in range(1, 6)]
    monkeypatch.setattr(tvd.CIFAR10, "train_list", train)
    monkeypatch.setattr(tvd.CIFAR10, "test_list", [["test_batch", md5("test_batch")]])
    meta = {"filename": "batches.meta", "key": "label_names", "md5": md5("batches.meta")}
    monkeypatch.setattr(tvd.CIFAR10, "meta", meta)


def test_cifar10_loads_from_python_batches_through_torchvision(tmp_path, monkeypatch):
    written = _write_cifar(tmp_path, np.random.default_rng(2))
    _trust_written_files(monkeypatch, tmp_path)
    d = load(DataRequest(name="cifar10"), root=tmp_path)
    assert d.classes == CIFAR_NAMES and d.input_shape == (3, 32, 32)
    assert len(d.y_train) == 30 and len(d.y_val) == 6
    first = torch.from_numpy(written["data_batch_1"][0]).view(3, 32, 32).float() / 255
    assert torch.equal(d.x_train[0], first)
    assert torch.equal(d.x_val, torch.from_numpy(written["test_batch"]).view(-1, 3, 32, 32) / 255)


def test_cifar10_files_that_fail_the_checksum_are_refused(tmp_path):
    _write_cifar(tmp_path, np.random.default_rng(2))  # the real class keeps the real MD5s
    with pytest.raises(DataError, match="damaged or not the official ones"):
        load(DataRequest(name="cifar10"), root=tmp_path)


def test_offline_cifar10_names_the_missing_files_and_where_they_go(tmp_path):
    with pytest.raises(DataError) as info:
        load(DataRequest(name="cifar10"), root=tmp_path)
    message = str(info.value)
    assert "CIFAR-10 is not on this server" in message
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "data_batch_1" in message and "batches.meta" in message
    assert "cifar-10-python.tar.gz" in message
    assert list(tmp_path.iterdir()) == []  # looking wrote nothing
