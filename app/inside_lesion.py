"""The Inside page's lesion study tab (Veit et al. 2016): every net of the run with one
block deleted at a time, then k random blocks; plain and residual on one scale. Drawing
only; `core.lesion` computes."""

from __future__ import annotations

import time

import streamlit as st

from app import inside_figures as fig
from app import inside_run as run
from app import inside_tables as tables
from app import state
from app.explain_run import compute
from app.i18n import _, number, tr
from core.inside import scaled_progress
from core.jobs import JobInfo
from core.lesion import (
    DEFAULT_DRAWS,
    DEFAULT_IMAGES,
    IDENTITY,
    MAX_DRAWS,
    MAX_IMAGES,
    lesion_study,
)


def lesion_tab(mgr, owner: str, info: JobInfo, arms: list[str]) -> None:
    st.caption(
        _(
            "Delete a block at test time and measure validation accuracy. A residual block "
            "keeps its shortcut, so the signal still flows; a plain block can only be deleted "
            "where its input and output have one shape. Veit et al. (2016) found residual "
            "nets degrade smoothly and plain nets collapse."
        )
    )
    c = st.columns(3)
    images = c[0].number_input(
        _("Validation images"),
        10,
        MAX_IMAGES,
        DEFAULT_IMAGES,
        step=100,
        key=state.inside_key(state.INSIDE_LESION, "images"),
    )
    draws = c[1].number_input(
        _("Random draws per k"),
        0,
        MAX_DRAWS,
        DEFAULT_DRAWS,
        key=state.inside_key(state.INSIDE_LESION, "draws"),
    )
    seed = c[2].number_input(
        _("Seed"), 0, 2**31 - 1, 0, key=state.inside_key(state.INSIDE_LESION, "seed")
    )
    if st.button(
        _("Run the lesion study"),
        type="primary",
        icon=":material/content_cut:",
        key=state.inside_key(state.INSIDE_LESION, "go"),
    ):
        found = compute(
            _("the lesion study"),
            "in_lesion",
            lambda progress: _study(
                mgr, owner, info, arms, int(images), int(draws), int(seed), progress
            ),
        )
        if found is not None:
            run.keep("lesion", info.id, found)
    found = run.result("lesion", info.id)
    if found is not None:
        show_lesion(*found, job=info.id)


def _study(mgr, owner, info, arms, images, draws, seed, progress):
    start = time.monotonic()
    nets, data = run.copy_nets(mgr, owner, info.id, arms)
    out = {}
    for k, (arm, net) in enumerate(nets.items()):
        inner = scaled_progress(progress, k / len(nets), (k + 1) / len(nets))
        out[arm] = lesion_study(net, data, images=images, draws=draws, seed=seed, progress=inner)
    return out, time.monotonic() - start


def show_lesion(studies, seconds: float, *, job: str) -> None:
    st.caption(
        _("{images} validation images · computed in {seconds} s").format(
            images=number(next(iter(studies.values())).images), seconds=number(seconds, 1)
        )
    )
    a, b = st.columns(2)
    run.chart(
        fig.lesion_figure(studies),
        "in_lesion_single",
        run.filename(job, "lesion"),
        tables.lesion_csv(studies),
        col=a,
    )
    if any(s.k_draws for s in studies.values()):
        run.chart(
            fig.k_curve_figure(studies),
            "in_lesion_k",
            run.filename(job, "lesion_k"),
            tables.k_curve_csv(studies),
            col=b,
        )
    for name, s in studies.items():
        plain = [r.block for r in s.removable if r.how == IDENTITY]
        lines = []
        if plain:
            lines.append(
                _("deleted as the identity (same shape in and out): blocks {blocks}").format(
                    blocks=plain
                )
            )
        lines += [
            _("block {block} kept: {reason}").format(block=k.block, reason=tr(k.reason))
            for k in s.kept
        ]
        if lines:
            st.markdown(f"**{name}**\n" + "\n".join(f"- {line}" for line in lines))
