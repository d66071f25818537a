"""An arm's initial weights (`core.run.Init`) as a file beside its checkpoint, so a run of
the process backend can start from given weights without anything crossing a pipe.

Why a file and not the source run's checkpoint: the weights are copied once, when the run
is submitted, so the run does not change if its source trains on, is deleted or came from
the thread backend (which keeps weights in memory only), and a resumed run rebuilds the
same start (and the same frozen parameters) before loading its own checkpoint over it.

Layout: `runs/<run id>/<arm id>.init.safetensors` (arm ids have no dots, so it cannot be
mistaken for an arm's checkpoint `<arm id>.safetensors`); the frozen parameter names are
JSON in the safetensors metadata. Read through `core.checkpoint.read_header`, which checks
every byte range first: never pickle.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from core.checkpoint import CheckpointError, atomic_write, read_header
from core.run import Init
from core.store import RunStore

FORMAT = "resnet-explorer-init"
SUFFIX = ".init.safetensors"


def init_to_bytes(init: Init) -> bytes:
    tensors = {k: v.detach().cpu().contiguous() for k, v in init.state.items()}
    meta = {"format": FORMAT, "version": 1, "frozen": list(init.frozen)}
    return st_save(tensors, metadata={"init": json.dumps(meta)})


def init_from_bytes(data: bytes, *, where: str = "the initial weights") -> Init:
    """The Init of `init_to_bytes`, checked: byte ranges, format, frozen names."""
    meta = read_header(data, where=where).get("__metadata__") or {}
    try:
        header = json.loads(meta["init"])
        tensors = st_load(data)
    except (KeyError, TypeError, json.JSONDecodeError, SafetensorError):
        raise CheckpointError("are not a ResNet Explorer weights file", where=where) from None
    frozen = header.get("frozen") if isinstance(header, dict) else None
    if header.get("format") != FORMAT or not isinstance(frozen, list):
        raise CheckpointError("are not initial weights of version 1", where=where)
    if not all(isinstance(n, str) and n in tensors for n in frozen):
        raise CheckpointError("freeze a parameter they do not hold", where=where)
    return Init(tensors, tuple(frozen))


def init_path(store: RunStore, run_id: str, arm_id: str) -> Path:
    return store.run_dir(run_id) / f"{arm_id}{SUFFIX}"


def save_inits(store: RunStore, run_id: str, inits: dict[str, Init | None]) -> None:
    """Write the initial weights of the arms (arm id -> Init) that have them."""
    for arm_id, init in inits.items():
        if init is None:
            continue
        path = init_path(store, run_id, arm_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, init_to_bytes(init))


def load_init(store: RunStore, run_id: str, arm_id: str) -> Init | None:
    """The arm's initial weights, or None when it starts from the run's seed."""
    path = init_path(store, run_id, arm_id)
    if not path.is_file():
        return None
    return init_from_bytes(path.read_bytes(), where=f"the initial weights of {arm_id}")
