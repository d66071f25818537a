"""kill -9 with real processes: a training process dies mid-run and mid-checkpoint-write;
the store opened afterwards has every flushed step, and no half-written checkpoint."""

import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from torch import nn

from core.checkpoint import TMP_SUFFIX, load_checkpoint, read_checkpoint
from core.model import build
from core.store import RunStore
from tests.core.helpers import tiny_spec
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


class Child:
    """tests/core/store_child.py in its own process, its stdout lines collected."""

    def __init__(self, mode: str, root: Path):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.core.store_child", mode, str(root)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def last(self, prefix: str) -> int:
        """The number after the last line starting with `prefix` (0 if none)."""
        found = [int(x.split()[1]) for x in self.lines if x.startswith(prefix)]
        return found[-1] if found else 0

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._reader.join(timeout=30)
        assert self.proc.returncode == -signal.SIGKILL, self.proc.stderr.read()

    def run_id(self) -> str:
        return next(x.split()[1] for x in self.lines if x.startswith("run "))


def wait_lines(child: Child, prefix: str, at_least: int) -> None:
    def ready():
        if child.proc.poll() is not None:
            raise AssertionError(f"the child ended early: {child.proc.stderr.read()}")
        return child.last(prefix) >= at_least

    wait_for(ready, timeout=120, what=f"'{prefix} {at_least}' from the child")


@pytest.mark.slow
def test_killed_mid_run_every_flushed_step_is_there_and_checkpoints_load(tmp_path):
    child = Child("train", tmp_path)
    wait_lines(child, "flushed", 28)
    child.kill()
    flushed = child.last("flushed")

    store = RunStore(tmp_path)
    run_id = child.run_id()
    steps = [r.step for r in store.snapshot(run_id, "residual").steps]
    assert steps == list(range(1, len(steps) + 1))  # no gaps
    assert len(steps) >= flushed
    assert store.interrupt_active() == [run_id]
    info = store.run(run_id)
    assert (info.status, info.message) == ("interrupted", f"interrupted at step {len(steps)}")

    net = build(tiny_spec(), seed=1)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator()
    header = load_checkpoint(store.checkpoint_path(run_id, "residual"), net, opt, {"order": gen})
    assert header["step"] % 3 == 0
    assert header["step"] <= len(steps)  # rows are written before the checkpoint
    assert not list(tmp_path.rglob(f"*{TMP_SUFFIX}"))


def temp_files(root: Path) -> list[Path]:
    return list(root.rglob(f"*{TMP_SUFFIX}"))


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["mid-write", "mid-write", "between writes"])
def test_killed_mid_checkpoint_write_no_checkpoint_is_half_written(tmp_path, moment):
    child = Child("checkpoints", tmp_path)
    wait_lines(child, "wrote", random.Random(moment).randint(1, 3))
    if moment == "mid-write":  # the temporary file exists: a write is under way
        wait_for(lambda: temp_files(tmp_path), timeout=120, every=0.001, what="a write")
    child.kill()
    wrote = child.last("wrote")
    if moment == "mid-write":
        assert temp_files(tmp_path), "the kill was meant to land inside a write"

    store = RunStore(tmp_path)  # opening cleans the dead writer's temporary file
    assert temp_files(tmp_path) == []
    path = store.checkpoint_path(child.run_id(), "big")
    tensors, header = read_checkpoint(path)
    assert header["step"] in (wrote, wrote + 1)  # the last one done, or the next, whole
    weight = tensors["model.weight"]
    assert weight.shape == (4096, 2048) and bool((weight == header["step"]).all())
    load_checkpoint(path, nn.Linear(2048, 4096, bias=False))
