"""The store side of resuming and explaining a run of the process backend: checkpoints
read back (checked safetensors, never pickle), rows after the checkpoint removed so the
resumed curve continues without a gap or a duplicate step.
"""

from __future__ import annotations

from torch import nn

from core.checkpoint import CheckpointError, read_checkpoint
from core.data import DataRequest, TensorData
from core.data import load as load_data
from core.jobs_api import JobError
from core.run import QUEUED, Weights
from core.spec import NetSpec
from core.store import RunStore, transaction
from core.store_records import RunInfo
from core.training import pick_device
from core.words import say


def _checkpoint(store: RunStore, row: RunInfo, arm: str):
    path = store.checkpoint_path(row.id, arm)
    if not path.is_file():
        return None
    return read_checkpoint(path)


def copy_weights(store: RunStore, row: RunInfo, arm: str) -> nn.Module:
    """A fresh net (eval mode) with one arm's last checkpointed weights and skip flags."""
    try:
        found = _checkpoint(store, row, arm)
    except CheckpointError as e:
        raise JobError(
            say("the weights of {name} cannot be read: {why}", name=row.name, why=e)
        ) from None
    if found is None:
        raise JobError(
            f"{row.name} has no saved weights yet; let it train a few more steps, or pause it"
        )
    tensors, header = found
    spec_text = header.get("extra", {}).get("spec")
    spec = NetSpec.from_json(spec_text) if spec_text else store.specs(row.id)[arm][1]
    state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        device = pick_device(row.config.device)
    except ValueError:
        device = "cpu"
    return Weights(spec, state).build(device)


def prepare_resume(store: RunStore, row: RunInfo) -> int:
    """Make an interrupted run ready to continue: every arm's checkpoint read back, the
    rows after the checkpoint's step deleted, the arms' specs as they were then, status
    queued. Returns that step.

    Raises:
        JobError: an arm has no readable checkpoint.
    """
    steps, specs = {}, {}
    for arm in row.arms:
        try:
            found = _checkpoint(store, row, arm)
        except CheckpointError as e:
            found, why = None, str(e)
        else:
            why = say("no checkpoint was saved before it was interrupted")
        if found is None:
            raise JobError(
                say(
                    "{name} cannot be resumed: {why}; start it again as a new run",
                    name=row.name,
                    why=why,
                )
            )
        header = found[1]
        steps[arm] = int(header["step"])
        specs[arm] = header.get("extra", {}).get("spec")
    step = min(steps.values())
    db = store.connect()
    with transaction(db):
        # Per arm: twin arms can be checkpointed a step apart (one was cut off mid-step),
        # and each continues from its own step.
        for arm, arm_step in steps.items():
            for table in ("steps", "evals", "events"):
                db.execute(
                    f"DELETE FROM {table} WHERE run_id = ? AND arm = ? AND step > ?",
                    (row.id, arm, arm_step),
                )
        for arm, spec in specs.items():
            if spec:
                db.execute(
                    "UPDATE arms SET spec_now = ? WHERE run_id = ? AND arm = ?",
                    (NetSpec.from_json(spec).to_json(), row.id, arm),
                )
        db.execute(
            "UPDATE runs SET status = ?, message = ?, step = ?, ended = NULL WHERE id = ?",
            (
                QUEUED,
                say("resumed from step {step}: it continues when a place is free", step=step),
                step,
                row.id,
            ),
        )
    return step


def run_data(row: RunInfo, data: TensorData | None, doing: str, *, load: bool = True):
    """The data a run trained on: handed over in memory (`data`), else its stored
    request, loaded (or, with `load` False, the DataRequest itself)."""
    if data is not None:
        return data
    if row.data.get("request") is None:
        raise JobError(
            f"the data {row.name} trained on was handed over in memory and is gone since "
            f"the server restarted; train the run again to {doing}"
        )
    request = DataRequest(**row.data["request"])
    return load_data(request, root=row.data.get("root")) if load else request
