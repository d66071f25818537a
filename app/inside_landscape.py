"""The Inside page's loss landscape tab (Li et al. 2018): a 1D and a 2D slice through the
trained weights along filter-normalised random directions, and the straight line from the
initial to the final weights; plain and residual twins on one grid and one colour scale.
Drawing only; `core.landscape` computes."""

from __future__ import annotations

import time

import streamlit as st
import torch

from app import inside_figures as fig
from app import inside_run as run
from app import inside_tables as tables
from app import state
from app.explain_run import compute
from app.i18n import N_, _, number
from core.inside import scaled_progress
from core.jobs import JobInfo
from core.landscape import LandscapeSettings, compare, interpolation
from core.limits import INSIDE_LIMITS
from core.model import summary

CAPS = INSIDE_LIMITS  # the settings' defaults and caps, with their reasons
CPU_BUDGET = CAPS.landscape_cpu_macs  # multiply-adds of one landscape at the CPU defaults
KINDS = {
    "2d": N_("2D contour and surface"),
    "1d": N_("1D slice"),
    "line": N_("Interpolation: initial → final weights"),
}
WHAT = {  # what the progress bar says it computes
    "2d": N_("the 2D contour and surface"),
    "1d": N_("the 1D slice"),
    "line": N_("the interpolation from the initial to the final weights"),
}


def defaults(specs) -> tuple[int, int]:
    """(grid, images) for the nets of `specs`: on a GPU a 21x21 grid on 1,024 images; on
    a CPU an 11x11 grid on as many images (32 to 256) as fit CPU_BUDGET multiply-adds,
    about a minute for the twins on a 2-core CPU (ResNet-20 at 32x32: 128 images)."""
    if torch.cuda.is_available():
        return 21, 1024
    grid = CAPS.landscape_grid
    macs = sum(summary(s).totals["mult-adds"] for s in specs) or 1
    images = CPU_BUDGET / (grid * grid * macs)
    return grid, int(min(CAPS.landscape_images, max(32, images // 32 * 32)))


def landscape_tab(mgr, owner: str, info: JobInfo, arms: list[str]) -> None:
    st.caption(
        _(
            "The training loss around the trained weights, along random directions scaled "
            "filter by filter to the weights (Li et al. 2018), on a fixed subset of training "
            "images. Residual nets tend to sit in wider, smoother valleys."
        )
    )
    kind = st.radio(
        _("Show"),
        list(KINDS),
        format_func=lambda k: _(KINDS[k]),
        horizontal=True,
        key=state.inside_key(state.INSIDE_LANDSCAPE, "kind"),
    )
    settings = _settings(info, arms, kind)
    if st.button(
        _("Compute"),
        type="primary",
        icon=":material/landscape:",
        key=state.inside_key(state.INSIDE_LANDSCAPE, "go", kind),
    ):
        found = compute(
            _(WHAT[kind]),
            "in_landscape",
            lambda progress: _landscape(mgr, owner, info, arms, kind, settings(), progress),
        )
        if found is not None:
            run.keep(f"landscape_{kind}", info.id, found)
    found = run.result(f"landscape_{kind}", info.id)
    if found is not None:
        show_landscape(kind, *found, job=info.id)


def _settings(info: JobInfo, arms: list[str], kind: str):
    """The settings' widgets (their defaults sized for this run's nets); a function that
    makes the LandscapeSettings, called when a computation starts (it checks them)."""
    grid0, images0 = defaults([info.specs[a] for a in arms if a in info.specs])
    c = st.columns(4)
    grid = c[0].number_input(
        _("Grid (points per axis)"),
        3,
        CAPS.max_landscape_grid,
        grid0,
        key=state.inside_key(state.INSIDE_LANDSCAPE, "grid", info.id),
    )
    span = c[1].number_input(
        _("Range ±"),
        0.1,
        CAPS.max_landscape_span,
        1.0,
        step=0.25,
        key=state.inside_key(state.INSIDE_LANDSCAPE, "span"),
    )
    images = c[2].number_input(
        _("Training images"),
        16,
        CAPS.max_landscape_images,
        images0,
        step=32,
        key=state.inside_key(state.INSIDE_LANDSCAPE, "images", info.id),
    )
    seed = c[3].number_input(
        _("Seed"), 0, 2**31 - 1, 0, key=state.inside_key(state.INSIDE_LANDSCAPE, "seed")
    )
    low, high = (0.0, 1.0) if kind == "line" else (-span, span)
    if kind == "line":
        st.caption(
            _(
                "α = 0 is the run's initial weights (rebuilt from its seed), α = 1 the trained "
                "ones; the range is 0 to 1."
            )
        )
    return lambda: LandscapeSettings(
        grid=int(grid), low=float(low), high=float(high), images=int(images), seed=int(seed)
    )


def _landscape(mgr, owner, info, arms, kind, settings, progress):
    start = time.monotonic()
    nets, data = run.copy_nets(mgr, owner, info.id, arms)
    if kind == "line":
        out = {}
        for k, (arm, net) in enumerate(nets.items()):
            inner = scaled_progress(progress, k / len(nets), (k + 1) / len(nets))
            first = run.initial_net(mgr, owner, info, arm, net)
            out[arm] = interpolation(first, net, data, settings, progress=inner)
    else:
        out = compare(nets, data, settings, dims=2 if kind == "2d" else 1, progress=progress)
    return out, settings, time.monotonic() - start


def show_landscape(kind: str, slices, settings, seconds: float, *, job: str) -> None:
    n = next(iter(slices.values())).images
    st.caption(
        _(
            "{grid} points per axis · {images} training images · seed {seed} · "
            "computed in {seconds} s"
        ).format(
            grid=settings.grid, images=number(n), seed=settings.seed, seconds=number(seconds, 1)
        )
    )
    name = run.filename(job, "landscape", kind)
    if kind == "2d":
        run.chart(
            fig.contour_figure(slices),
            "in_ls_contour",
            name + "_contour",
            tables.slice_2d_csv(slices),
        )
        run.chart(fig.surface_figure(slices), "in_ls_surface", name + "_surface")
    elif kind == "1d":
        run.chart(fig.slice_1d_figure(slices), "in_ls_1d", name, tables.slice_1d_csv(slices))
    else:
        figure = fig.slice_1d_figure(
            slices,
            title=_("Loss from the initial to the trained weights"),
            x=_("α (0: initial, 1: trained)"),
        )
        run.chart(figure, "in_ls_line", name, tables.slice_1d_csv(slices))
