"""The Inside page's errors-per-class tab: each net's confusion matrix (counts and shares
of each true class), its accuracy per class, and the validation images it gets wrong most
confidently, with a button that opens them on the Explain page. Drawing only;
`core.confusion` computes."""

from __future__ import annotations

import time

import numpy as np
import streamlit as st
from streamlit.errors import StreamlitAPIException

from app import inside_figures as fig
from app import inside_run as run
from app import inside_tables as tables
from app import state
from app.explain_run import compute
from app.i18n import _, number
from core.confusion import confusion
from core.inside import scaled_progress
from core.jobs import JobInfo

GALLERY = 12  # wrong images shown per net


def errors_tab(mgr, owner: str, info: JobInfo, arms: list[str]) -> None:
    st.caption(_("Which classes each net confuses, on the validation images."))
    if st.button(
        _("Count the errors"),
        type="primary",
        icon=":material/grid_on:",
        key=state.inside_key(state.INSIDE_ERRORS, "go"),
    ):
        found = compute(
            _("the errors per class"),
            "in_errors",
            lambda progress: _errors(mgr, owner, info, arms, progress),
        )
        if found is not None:
            run.keep("errors", info.id, found)
    found = run.result("errors", info.id)
    if found is not None:
        show_errors(*found, job=info.id)


def _errors(mgr, owner, info, arms, progress):
    start = time.monotonic()
    nets, data = run.copy_nets(mgr, owner, info.id, arms)
    confs, thumbs = {}, {}
    for k, (arm, net) in enumerate(nets.items()):
        inner = scaled_progress(progress, k / len(nets), (k + 1) / len(nets))
        confs[arm] = conf = confusion(net, data, mistakes=GALLERY, progress=inner)
        idx = [m.index for m in conf.mistakes]
        x = data.x_val[idx].detach().cpu().float().clamp(0, 1).numpy() if idx else None
        thumbs[arm] = None if x is None else (x.transpose(0, 2, 3, 1) * 255).astype(np.uint8)
    return confs, thumbs, time.monotonic() - start


def show_errors(confs, thumbs, seconds: float, *, job: str) -> None:
    st.caption(
        _("{images} validation images · computed in {seconds} s").format(
            images=number(next(iter(confs.values())).images), seconds=number(seconds, 1)
        )
    )
    shares = st.toggle(
        _("Shares of each true class"), key=state.inside_key(state.INSIDE_ERRORS, "norm")
    )
    cols = st.columns(len(confs))
    for col, (name, conf) in zip(cols, confs.items(), strict=True):
        col.metric(
            name,
            number(conf.accuracy, 1, percent=True),
            help=_("accuracy on these validation images"),
        )
        run.chart(
            fig.confusion_figure(conf, normalised=shares),
            f"in_err_cm_{name}",
            run.filename(job, name, "confusion"),
            col=col,
        )
    st.download_button(
        _("Confusion matrices (CSV)"),
        tables.confusion_csv(confs),
        file_name=f"{run.filename(job, 'confusion')}.csv",
        mime="text/csv",
        key=state.inside_key(state.INSIDE_ERRORS, "cm_csv"),
    )
    run.chart(
        fig.per_class_figure(confs),
        "in_err_class",
        run.filename(job, "per_class"),
        tables.per_class_csv(confs),
    )
    _gallery(confs, thumbs, job)


def _gallery(confs, thumbs, job: str) -> None:
    st.markdown("**" + _("Most confidently wrong") + "**")
    for name, conf in confs.items():
        images = thumbs.get(name)
        if images is None:
            st.caption(_("{name} gets every one of these images right.").format(name=name))
            continue
        captions = [
            f"#{m.index}: {conf.classes[m.true]} → {conf.classes[m.predicted]} ({m.confidence:.0%})"
            for m in conf.mistakes
        ]
        st.caption(name)
        st.image(list(images), caption=captions, width=96)
    st.download_button(
        _("Wrong images (CSV)"),
        tables.mistakes_csv(confs),
        file_name=f"{run.filename(job, 'mistakes')}.csv",
        mime="text/csv",
        key=state.inside_key(state.INSIDE_ERRORS, "mis_csv"),
    )
    if st.button(  # the callback sets the Explain page's choices before any widget is drawn
        _("Explain them on the Explain page"),
        icon=":material/visibility:",
        key=state.inside_key(state.INSIDE_ERRORS, "explain"),
        on_click=state.explain_misclassified,
        args=(job,),
    ):
        try:
            st.switch_page("views/explain.py")
        except StreamlitAPIException:  # this page runs on its own (a test): no navigation
            st.info(
                _("Open the Explain page: it shows these images, most confidently wrong first.")
            )
