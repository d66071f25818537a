"""A shared run, read-only: `?run=<id>&view=<token>` shows that run's charts and settings
from the store, and nothing else: no controls, no delete, no other page. A wrong or
stale link shows one line saying so."""

import time

import streamlit as st

from app import live, runs_table, services, state
from app.markup import plain
from app.runs_actions import LINK_INVALID

link = state.shared_link()
store = services.store()
info = store.shared_run(*link) if link else None
if info is None:
    st.error(LINK_INVALID, icon=":material/link_off:")
    st.stop()

st.title(plain(info.name))
best = "—" if info.best_val_accuracy is None else f"{info.best_val_accuracy:.1%}"
dataset = runs_table.dataset_title(info)
st.caption(
    f"A shared run, read-only · {info.status} · {dataset} · step {info.step:,} of "
    f"{info.total_steps:,} · best validation accuracy {best} · "
    f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(info.created))}"
)
snapshots = {arm: store.snapshot(info.id, arm) for arm in info.arms}
if any(s.steps for s in snapshots.values()):
    live.charts(snapshots, key="shared")
else:
    st.info("This run has no logged steps yet.")
with st.expander("Training settings"):
    st.code(info.config_json, language="json")
with st.expander("Networks"):
    for arm, (_, now) in store.specs(info.id).items():
        st.markdown(f"**{plain(arm)}**")
        st.code(now.to_json() if now is not None else "{}", language="json")
