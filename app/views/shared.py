"""A shared run, read-only: `?run=<id>&view=<token>` shows that run's charts and settings
from the store, and nothing else: no controls, no delete, no other page. A wrong or
stale link shows one line saying so."""

import time

import streamlit as st

from app import live, runs_table, services, state
from app.choices import status_word
from app.i18n import _, number
from app.markup import plain
from app.runs_actions import LINK_INVALID

link = state.shared_link()
store = services.store()
info = store.shared_run(*link) if link else None
if info is None:
    st.error(_(LINK_INVALID), icon=":material/link_off:")
    st.stop()

st.title(plain(info.name))
best = "—" if info.best_val_accuracy is None else number(info.best_val_accuracy, 1, percent=True)
dataset = runs_table.dataset_title(info)
st.caption(
    _(
        "A shared run, read-only · {status} · {dataset} · step {step} of {total} · best "
        "validation accuracy {best} · {date}"
    ).format(
        status=status_word(info.status),
        dataset=dataset,
        step=number(info.step),
        total=number(info.total_steps),
        best=best,
        date=time.strftime("%Y-%m-%d %H:%M", time.localtime(info.created)),
    )
)
snapshots = {arm: store.snapshot(info.id, arm) for arm in info.arms}
if any(s.steps for s in snapshots.values()):
    live.charts(snapshots, key="shared")
else:
    st.info(_("This run has no logged steps yet."))
with st.expander(_("Training settings")):
    st.code(info.config_json, language="json")
with st.expander(_("Networks")):
    for arm, (_start, now) in store.specs(info.id).items():
        st.markdown(f"**{plain(arm)}**")
        st.code(now.to_json() if now is not None else "{}", language="json")
