"""A training process for the kill -9 tests (tests/core/test_store_kill.py): it writes
through the real RunStore and RunWriter and says on stdout what it has flushed.

    python -m tests.core.store_child train <data dir>        a tiny net, checkpoints every 3 steps
    python -m tests.core.store_child checkpoints <data dir>  32 MB checkpoints, back to back
    python -m tests.core.store_child readonly <data dir>     open a store that cannot write:
                                                            what it lists and keeps, as JSON
"""

import json
import sys

import torch
import torch.nn.functional as F
from torch import nn

from core.checkpoint import read_checkpoint
from core.config import TrainConfig
from core.model import build
from core.store import RunStore
from core.store_writer import RunWriter
from core.telemetry import StepRecord
from tests.core.helpers import tiny_spec


def say(text: str) -> None:
    print(text, flush=True)


def train(root: str) -> None:
    spec = tiny_spec()
    store = RunStore(root)
    run_id = store.create_run("ann", "killed", arms={"residual": spec}, config=TrainConfig())
    say(f"run {run_id}")
    writer = RunWriter(store, run_id, every_s=0.05, every_n=5)
    net = build(spec, seed=0)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 3, 8, 8, generator=gen), torch.arange(64) % 2
    writer.arm("residual", layers=("all",))
    for step in range(1, 100_000):
        idx = torch.randint(0, 64, (16,), generator=gen)
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        norm = float(torch.linalg.vector_norm(torch.cat([p.flatten() for p in net.parameters()])))
        writer.step(
            "residual",
            StepRecord(
                step=step,
                epoch=0.0,
                loss=loss.item(),
                accuracy=0.5,
                lr=0.05,
                grad_norms=(norm,),
                weight_norms=(norm,),
                update_ratios=(0.0,),
            ),
        )
        if step % 3 == 0:
            writer.checkpoint("residual", net, opt, {"order": gen}, step=step)
        if step % 7 == 0:
            writer.flush()
            say(f"flushed {step}")


def checkpoints(root: str) -> None:
    store = RunStore(root)
    run_id = store.create_run("ann", "big", arms={"big": tiny_spec()}, config=TrainConfig())
    say(f"run {run_id}")
    writer = RunWriter(store, run_id, every_s=3600, every_n=10**9)
    big = nn.Linear(2048, 4096, bias=False)  # 32 MB of float32
    with torch.no_grad():
        for i in range(1, 100_000):
            big.weight.fill_(float(i))  # a half-written file would mix values
            writer.checkpoint("big", big, step=i)
            writer.flush()
            say(f"wrote {i}")


def readonly(root: str) -> None:
    """Open the store (run with no right to write `root`), list what was stored, train a
    new run's records into it, and say it all as one JSON line."""
    store = RunStore(root)
    stored = store.list_runs("ann")
    killed = [r for r in stored if r.name == "killed"]
    steps = [r.step for r in store.snapshot(killed[0].id, "residual").steps] if killed else []
    header = read_checkpoint(store.checkpoint_path(killed[0].id, "residual"))[1] if killed else {}
    run_id = store.create_run("ann", "new", arms={"residual": tiny_spec()}, config=TrainConfig())
    writer = RunWriter(store, run_id, every_s=3600)
    for step in range(1, 4):
        norms = dict(grad_norms=(1.0,), weight_norms=(1.0,), update_ratios=(0.0,))
        writer.step(
            "residual", StepRecord(step=step, epoch=0.0, loss=1.0, accuracy=0.5, lr=0.1, **norms)
        )
    flushed = writer.close()
    say(
        json.dumps(
            {
                "saving": store.saving,
                "message": store.message,
                "stored": [r.name for r in stored],
                "killed_steps": steps,
                "checkpoint_step": header.get("step"),
                "flushed": flushed,
                "writer_message": writer.message,
                "listed": [r.name for r in store.list_runs("ann")],
                "new_steps": [r.step for r in store.snapshot(run_id, "residual").steps],
            }
        )
    )


if __name__ == "__main__":
    torch.set_num_threads(1)
    modes = {"train": train, "checkpoints": checkpoints, "readonly": readonly}
    modes[sys.argv[1]](sys.argv[2])
