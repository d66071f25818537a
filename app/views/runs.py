"""Runs: this browser's runs, their settings and results; open, download, delete."""

import time

import streamlit as st

from app import live, services, state
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
chosen = st.selectbox(
    "Open run", ids, format_func=lambda r: f"{r} · {mgr.info(r, owner).name}", key="runs_open"
)
info = mgr.info(chosen, owner)
logs = mgr.logs(chosen, owner)
cols = st.columns(len(logs) * 2 + 1)
for n, (arm, log) in enumerate(logs.items()):
    snap = log.snapshot()
    cols[2 * n].download_button(
        f"Metrics CSV · {arm}",
        snap.to_csv(),
        file_name=f"{chosen}_{arm}.csv".replace(" ", "_"),
        mime="text/csv",
        key=f"csv_{chosen}_{arm}",
    )
    cols[2 * n + 1].download_button(
        f"Spec JSON · {arm}",
        snap.meta.get("spec", "{}"),
        file_name=f"{chosen}_{arm}.json".replace(" ", "_"),
        mime="application/json",
        key=f"spec_{chosen}_{arm}",
    )
if cols[-1].button(
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
