"""Runs: this browser's runs, their settings and results; open, download, delete."""

import time

import streamlit as st

from app import exports, live, services, state
from app.plain import literal
from core.jobs import ACTIVE, JobError

st.title("Your runs")
owner = state.owner()
mgr = services.job_manager()
runs = sorted(mgr.list(owner), key=lambda i: i.created, reverse=True)
if not runs:
    st.info("No runs yet in this browser. Start one on the Train or Compare page.")
    st.stop()


def _final(info, arm: str) -> str:
    snap = mgr.logs(info.id, owner).get(arm)
    ev = snap.snapshot().evals if snap else ()
    return f"{ev[-1].accuracy * 100:.1f}%" if ev else "—"


rows = [
    {
        "run": i.id,
        "name": i.name,
        "status": i.status,
        "networks": ", ".join(i.arms),
        "steps": f"{i.step:,} / {i.total_steps:,}",
        "val accuracy": " · ".join(_final(i, a) for a in i.arms),
        "optimizer": f"{i.config.optimizer} lr {i.config.lr:g}",
        "started": time.strftime("%H:%M:%S", time.localtime(i.created)),
    }
    for i in runs
]
st.dataframe(rows, hide_index=True, width="stretch")

ids = [i.id for i in runs]
names = {i.id: i.name for i in runs}
chosen = st.selectbox(
    "Open run", ids, format_func=lambda r: f"{r} · {names[r]}", key=state.RUNS_OPEN
)
info = mgr.info(chosen, owner)
logs = mgr.logs(chosen, owner)
for arm, log in logs.items():  # one row per net, so each label is read whole
    snap = log.snapshot()
    stem = f"{exports.file_stem(chosen)}_{exports.file_stem(arm)}"
    cols = st.columns(2)
    cols[0].download_button(
        f"{literal(arm)}: tables (zip of steps, evaluations, events CSV)",
        exports.arm_zip(chosen, arm, snap),
        file_name=f"{stem}.zip",
        mime="application/zip",
        key=f"zip_{chosen}_{arm}",
    )
    cols[1].download_button(
        f"{literal(arm)}: network (spec JSON)",
        snap.meta.get("spec", "{}"),
        file_name=f"{stem}.json",
        mime="application/json",
        key=f"spec_{chosen}_{arm}",
    )
if st.button(
    "Delete run",
    icon=":material/delete:",
    disabled=info.status in ACTIVE,
    help="Stop it first." if info.status in ACTIVE else None,
):
    try:
        mgr.delete(chosen, owner)
        st.rerun()
    except JobError as e:
        st.error(str(e))
with st.expander("Training settings"):
    st.code(info.config.to_json(), language="json")
live.run_panel(chosen, key="runs", editable=info.status in ACTIVE)
