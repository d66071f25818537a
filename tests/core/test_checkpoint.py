"""Checkpoints: a restored run continues bit for bit, broken files are named, nothing is
unpickled, and temporary files of dead writers are cleaned away."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.checkpoint import (
    CheckpointError,
    atomic_write,
    checkpoint_bytes,
    clean_temp_files,
    load_checkpoint,
    read_header,
    save_checkpoint,
)
from core.model import build
from tests.core.helpers import tiny_spec, with_dropout

ROOT = Path(__file__).resolve().parents[2]


def batches(n: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 8, 8, generator=g), torch.arange(n) % 2


def make(optimizer: str, seed: int):
    """A net with BatchNorm and dropout, its optimizer, and the run's two generators."""
    net = build(with_dropout(tiny_spec()), seed=seed)
    if optimizer == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    else:
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3, betas=(0.8, 0.95))
    gens = {"order": torch.Generator().manual_seed(seed), "noise": torch.Generator()}
    gens["noise"].manual_seed(seed + 1)
    for m in net.modules():
        if isinstance(m, nn.Dropout):
            m.generator = gens["noise"]  # core's Dropout draws its masks from it
    return net, opt, gens


def train(net, opt, gens, steps: int) -> None:
    x, y = batches()
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(y), (16,), generator=gens["order"])
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_restored_run_continues_bit_for_bit(tmp_path, optimizer):
    path = tmp_path / "arm.safetensors"
    net, opt, gens = make(optimizer, seed=0)
    train(net, opt, gens, 5)
    save_checkpoint(path, net, opt, gens, step=5, extra={"base_lr": 0.05})
    train(net, opt, gens, 4)

    net2, opt2, gens2 = make(optimizer, seed=123)  # another start: all of it must be restored
    header = load_checkpoint(path, net2, opt2, gens2)
    assert (header["step"], header["extra"]) == (5, {"base_lr": 0.05})
    train(net2, opt2, gens2, 4)

    a, b = net.state_dict(), net2.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "weights, BN stats or counters differ"
    sa, sb = opt.state_dict(), opt2.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert sa["state"].keys() == sb["state"].keys()
    for i, entry in sa["state"].items():
        assert entry.keys() == sb["state"][i].keys()
        assert all(
            torch.equal(torch.as_tensor(v), torch.as_tensor(sb["state"][i][k]))
            for k, v in entry.items()
        )


def test_a_cut_short_checkpoint_is_named_not_loaded(tmp_path):
    net, opt, gens = make("sgd", seed=0)
    data = checkpoint_bytes(net, opt, gens, step=1)
    path = tmp_path / "plain.safetensors"
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path, *make("sgd", seed=1))
    assert str(e.value).startswith("the checkpoint plain.safetensors: holds ")
    assert "cut short" in str(e.value)


def test_a_checkpoint_of_another_network_does_not_load(tmp_path):
    path = tmp_path / "a.safetensors"
    save_checkpoint(path, nn.Linear(3, 2), step=1)
    with pytest.raises(CheckpointError, match=r"a\.safetensors: does not fit this network"):
        load_checkpoint(path, nn.Linear(3, 4))


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\x01\x02", "is cut short: it has no safetensors header"),
        ((2**40).to_bytes(8, "little") + b"{}", "declares a header of 1,099,511,627,776 bytes"),
        ((10).to_bytes(8, "little") + b"{}", "is cut short inside its header"),
        ((2).to_bytes(8, "little") + b"[]", "has a header that is not a JSON object"),
        ((4).to_bytes(8, "little") + b"\xff\xfe{}", "has a header that is not valid JSON"),
    ],
)
def test_safetensors_headers_are_checked_before_any_tensor(data, problem):
    with pytest.raises(CheckpointError) as e:
        read_header(data, where="weights.safetensors")
    assert str(e.value).startswith(f"weights.safetensors: {problem}")


def test_atomic_write_leaves_no_temporary_file_and_dead_writers_files_are_cleaned(tmp_path):
    atomic_write(tmp_path / "x.bin", b"new")
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], text=True, capture_output=True
    ).stdout.strip()
    (tmp_path / f".x.bin.{dead}.tmp").write_bytes(b"half")
    (tmp_path / f".y.bin.{os.getpid()}.tmp").write_bytes(b"in progress")  # a live writer
    removed = clean_temp_files(tmp_path)
    assert [p.name for p in removed] == [f".x.bin.{dead}.tmp"]
    assert (tmp_path / f".y.bin.{os.getpid()}.tmp").exists()


def test_nothing_in_the_project_unpickles():
    """No torch.load and no pickle.load(s) in core/, app/ or bench/."""
    pattern = re.compile(r"torch\.load\(|pickle\.loads?\(|import pickle")
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("core", "app", "bench")
        for path in (ROOT / folder).rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []
