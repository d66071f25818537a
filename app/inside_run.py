"""The Inside page's shared parts: copying a run's networks when a computation starts (raw
nets: the core experiments normalise their inputs as the trainer did), rebuilding their
initial weights from the run's seed (a transferred net's from the file its run started
from), the results kept between reruns, and a chart with its
PNG button and CSV download. Run choice and progress are the Explain page's
(`app.explain_run`): one helper for every long computation."""

from __future__ import annotations

import re

import plotly.graph_objects as go
import streamlit as st
import torch
from torch import nn

from app import services, state
from app.i18n import _
from core.arm_init import load_init
from core.data import TensorData
from core.inside import InsideError, net_device
from core.jobs import JobInfo
from core.model import build
from core.spec import NetSpec
from core.store_view import safe_arm_ids
from core.transfer import TRANSFERRED, is_transfer


def copy_nets(
    mgr, owner: str, job: str, arms: list[str]
) -> tuple[dict[str, nn.Module], TensorData]:
    """Copies of the chosen networks as trained, and the run's data. The one place this
    page copies weights: called when a button starts a computation, never on a rerun."""
    copies = {arm: mgr.copy_model(job, owner, arm) for arm in arms}
    data = next(iter(copies.values()))[1]
    return {arm: fast_layout(net) for arm, (net, _) in copies.items()}, data


def fast_layout(net: nn.Module) -> nn.Module:
    """The copy in the trainer's layout: channels_last on the CPU and CUDA (oneDNN's fast
    convolutions; a ResNet-20 lesion study took 17-25% less CPU time, bench/inside.py);
    MPS keeps the default. The values are the same; the core experiments lay out their
    inputs to match (core.inside.model_inputs)."""
    if net_device(net).type in ("cpu", "cuda"):
        net.to(memory_format=torch.channels_last)
    return net


def initial_net(mgr, owner: str, info: JobInfo, arm: str, like: nn.Module) -> nn.Module:
    """The arm's weights before its first step: a run builds every arm with
    `core.model.build(spec, seed=config.seed)` (core.run.Run), so the seed rebuilds them,
    from the spec as submitted (its log's "spec_start"; live skip toggles came later)."""
    start = mgr.logs(info.id, owner)[arm].snapshot().meta.get("spec_start")
    spec = NetSpec.from_json(start) if start else info.specs[arm]
    net = build(spec, seed=info.config.seed)
    if is_transfer(info.name) and arm == TRANSFERRED:  # it started from another run's net
        init = load_init(services.store(), info.id, safe_arm_ids(info.arms)[arm])
        if init is None:
            raise InsideError(
                "the transferred net started from another run's weights, and this server "
                "did not keep them (runs on threads are not stored)",
                where="interpolation",
                fix="choose the net trained from scratch",
            )
        net.load_state_dict(init.state)
    p = next(like.parameters())
    return fast_layout(net.to(p.device).eval())


def result(kind: str, job: str):
    """The last result of `kind` ("lesion", "landscape", ...) if computed for `job`."""
    return state.explain_result(f"inside_{kind}", job)


def keep(kind: str, job: str, value) -> None:
    state.set_explain_result(f"inside_{kind}", job, value)


def filename(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(parts)).strip("_")[:80]


def chart(fig: go.Figure, key: str, name: str, csv: str | None = None, col=None) -> None:
    """The figure with its modebar's camera saving a PNG called `name` (kaleido is not
    needed: the browser draws it), and the figure's data as CSV under it."""
    where = col if col is not None else st
    where.plotly_chart(
        fig,
        key=key,
        width="stretch",
        config={"toImageButtonOptions": {"format": "png", "filename": name, "scale": 2}},
    )
    if csv is not None:
        where.download_button(
            _("Data (CSV)"),
            csv,
            file_name=f"{name}.csv",
            mime="text/csv",
            icon=":material/download:",
            key=f"{key}_csv",
        )
