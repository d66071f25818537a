"""Checkpoints as safetensors: model, optimizer, RNG states and step, written atomically.

Nothing is read with pickle: tensors come from safetensors, everything else from a JSON
header in its metadata. A file is written to a temporary name in the same folder, flushed,
fsynced and renamed, so a crash leaves either the old checkpoint or the new one, never half.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from core.errors import ExplainedError
from core.words import say

FORMAT = "resnet-explorer-checkpoint"
VERSION = 1
TMP_SUFFIX = ".tmp"
MAX_HEADER_BYTES = 16 * 1024**2  # safetensors' own reader refuses above 100 MB; ours: 16 MB

# safetensors dtype names and their sizes in bytes
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2}
DTYPE_BYTES |= {"I8": 1, "U8": 1, "BOOL": 1}


class CheckpointError(ExplainedError):
    """A checkpoint that cannot be read or does not fit the network."""


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that a crash at any moment leaves the old file or the new.

    The temporary name carries the pid, so a store opened by another process can tell a
    write in progress from one left by a dead process (`clean_temp_files`).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself reaches the disk
    finally:
        os.close(fd)


def clean_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Remove temporary files left by writers that died; keep those of live processes."""
    removed = []
    for tmp in Path(folder).rglob(f".*{TMP_SUFFIX}"):
        pid = tmp.name.removesuffix(TMP_SUFFIX).rsplit(".", 1)[-1]
        if pid.isdigit() and _alive(int(pid)):
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- optimizer state <-> tensors + JSON ---------------------------------------------------


def _encode(value):
    """JSON for the non-tensor parts of an optimizer's state (tuples kept as tuples)."""
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    return value


def _decode(value):
    if isinstance(value, dict):
        if set(value) == {"__tuple__"}:
            return tuple(_decode(v) for v in value["__tuple__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer's state_dict as tensors named `optim.<param>.<key>` plus JSON."""
    tensors, scalars = {}, {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = _encode(value)
    return tensors, {"groups": _encode(state["param_groups"]), "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], header: dict) -> dict:
    state: dict[int, dict] = {}
    for name, tensor in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = tensor
    for index, values in header["scalars"].items():
        state.setdefault(int(index), {}).update(_decode(values))
    return {"state": state, "param_groups": _decode(header["groups"])}


# --- save and load -------------------------------------------------------------------------


def checkpoint_bytes(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    generators: dict[str, torch.Generator] | None = None,
    *,
    step: int = 0,
    extra: dict | None = None,
) -> bytes:
    """The checkpoint as safetensors bytes: tensors `model.*`, `optim.*`, `rng.*`."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    header: dict = {"format": FORMAT, "version": VERSION, "step": step, "extra": extra or {}}
    if optimizer is not None:
        optim_tensors, header["optimizer"] = flatten_optimizer(optimizer.state_dict())
        tensors |= optim_tensors
    for name, gen in (generators or {}).items():
        tensors[f"rng.{name}"] = gen.get_state()  # uint8 tensor
    return st_save(tensors, metadata={"checkpoint": json.dumps(header)})


def save_checkpoint(path: str | os.PathLike, model, optimizer=None, generators=None, **kw) -> int:
    """Write a checkpoint atomically; returns its size in bytes."""
    data = checkpoint_bytes(model, optimizer, generators, **kw)
    atomic_write(path, data)
    return len(data)


def read_header(data: bytes, *, where: str, max_header: int = MAX_HEADER_BYTES) -> dict:
    """Parse a safetensors header ourselves: 8 bytes little-endian length, then JSON.

    Checks that every tensor's byte range matches its dtype and shape, that ranges tile
    the data without gaps or overlaps, and that the data ends where the file ends.
    """
    if len(data) < 8:
        raise CheckpointError(say("is cut short: it has no safetensors header"), where=where)
    (n,) = struct.unpack("<Q", data[:8])
    if n > max_header:
        raise CheckpointError(
            say(
                "declares a header of {n:,} bytes; at most {limit:,} are accepted",
                n=n,
                limit=max_header,
            ),
            where=where,
            fix=say("export the run again"),
        )
    if 8 + n > len(data):
        raise CheckpointError(say("is cut short inside its header"), where=where)
    try:
        header = json.loads(data[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(say("has a header that is not valid JSON"), where=where) from None
    if not isinstance(header, dict):
        raise CheckpointError(say("has a header that is not a JSON object"), where=where)
    _check_ranges(header, len(data) - 8 - n, where)
    return header


def _check_ranges(header: dict, size: int, where: str) -> None:
    ranges = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        ok = isinstance(info, dict) and info.get("dtype") in DTYPE_BYTES
        shape, offsets = (info.get("shape"), info.get("data_offsets")) if ok else (None, None)
        ok = ok and isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)
        ok = ok and isinstance(offsets, list) and len(offsets) == 2
        ok = ok and all(type(o) is int for o in offsets)
        if not ok:
            raise CheckpointError(say("describes tensor {name!r} wrongly", name=name), where=where)
        count = 1
        for d in shape:
            count *= d
        if offsets[1] - offsets[0] != count * DTYPE_BYTES[info["dtype"]]:
            wrong = say("gives tensor {name!r} the wrong number of bytes", name=name)
            raise CheckpointError(wrong, where=where)
        ranges.append(offsets)
    end = 0
    for begin, stop in sorted(ranges):
        if begin != end:
            raise CheckpointError(say("has tensors that overlap or leave gaps"), where=where)
        end = stop
    if end != size:
        raise CheckpointError(
            say(
                "holds {size:,} bytes of tensor data but its header describes {end:,}; "
                "the file is cut short or has extra bytes",
                size=size,
                end=end,
            ),
            where=where,
        )


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """All tensors and the JSON header of a checkpoint file (checked, never unpickled)."""
    where = say("the checkpoint {name}", name=Path(path).name)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise CheckpointError(
            say("cannot be read ({why})", why=str(e.strerror)), where=where
        ) from None
    meta = read_header(data, where=where).get("__metadata__") or {}
    try:
        header = json.loads(meta["checkpoint"])
        tensors = st_load(data)
    except (KeyError, TypeError, json.JSONDecodeError, SafetensorError):
        raise CheckpointError(say("is not a ResNet Explorer checkpoint"), where=where) from None
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise CheckpointError(say("is not a ResNet Explorer checkpoint of version 1"), where=where)
    return tensors, header


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    generators: dict[str, torch.Generator] | None = None,
) -> dict:
    """Restore model, optimizer and generators in place; returns the header (its 'step')."""
    tensors, header = read_checkpoint(path)
    weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        raise CheckpointError(
            say("does not fit this network ({why})", why=str(e).splitlines()[0]),
            where=say("the checkpoint {name}", name=Path(path).name),
        ) from None
    if optimizer is not None and "optimizer" in header:
        optim = {k: v for k, v in tensors.items() if k.startswith("optim.")}
        optimizer.load_state_dict(unflatten_optimizer(optim, header["optimizer"]))
    for name, gen in (generators or {}).items():
        gen.set_state(tensors[f"rng.{name}"])
    return header
