"""The Explain page's two checks that the maps can be trusted: localisation on Shapes'
object masks, and Adebayo et al.'s sanity check. Drawing only; `core.attribution_quality`
computes."""

from __future__ import annotations

import streamlit as st

from app import attribution_figures as af
from app import attribution_tables as tables
from app import state
from app.explain_run import compute, load_networks
from app.i18n import N_, _
from core.attribution import METHODS, AttributionError, AttributionRequest, pick_images, take
from core.attribution_quality import (
    CONTROLS,
    INDEPENDENCE_THRESHOLD,
    SanityReport,
    compare_localisation,
    sanity_checks,
)
from core.jobs import JobInfo
from core.shapes_data import SHAPE_CLASSES

# The one line a teacher needs when a method keeps black pixels at zero (issue 10).
BLACK_PIXELS = N_(
    "Methods that multiply by the input (Input × Gradient, Integrated Gradients and "
    "GradientShap from a black baseline, Occlusion with a black patch) keep every black "
    "pixel at zero whatever the weights, which holds their score up on images with a black "
    "background, as Adebayo et al. (2018) report for input-multiplied methods: the "
    "long-dashed lines score the non-black pixels alone."
)


def localisation_tab(mgr, owner: str, info: JobInfo, arms: list[str]) -> None:
    st.markdown(
        _(
            "Does the map point at the object? On Shapes every image comes with a mask of its "
            "shape. **On the object**: the share of the map's positive attribution inside the "
            "mask. **Pointing game**: how often the map's highest pixel lands on the object "
            "(Zhang et al. 2016). **Chance**: what a map spread evenly would score."
        )
    )
    # Only the built-in Shapes has masks; its class names tell it without copying the run.
    if tuple(info.classes) != SHAPE_CLASSES:
        st.info(
            _(
                "This run's data has no object masks; only the built-in Shapes has. "
                "Race two nets on Shapes on the Compare page to measure this."
            )
        )
        return
    chosen, n = _methods_and_images(
        ["saliency", "integrated_gradients", "gradcam"], state.EXPLAIN_LOCALISATION, (8, 128, 32, 8)
    )
    st.caption(_("Each method with its default settings, on the same random images."))
    if st.button(
        _("Measure"),
        icon=":material/straighten:",
        key=f"{state.EXPLAIN_LOCALISATION}_go",
        disabled=not chosen,
    ):
        found = compute(
            _("the localisation scores"),
            "loc",
            lambda progress: _localisation(mgr, owner, info.id, arms, chosen, n, progress),
        )
        if found is not None:
            state.set_explain_result("localisation", info.id, found)
    rows = state.explain_result("localisation", info.id)
    if rows:
        st.dataframe(tables.localisation_rows(rows), hide_index=True, width="stretch")
        st.caption(
            _("Means over {images} validation images; maps of the predicted class.").format(
                images=rows[0].score.images
            )
        )


def _methods_and_images(default: list[str], key: str, images: tuple) -> tuple[list[str], int]:
    """The methods to measure and how many images (slider: low, high, start, step)."""
    c = st.columns([3, 1])
    chosen = c[0].multiselect(
        _("Methods"),
        list(METHODS),
        default=default,
        format_func=lambda m: METHODS[m].title,
        key=f"{key}_methods",
    )
    low, high, start, step = images
    return chosen, c[1].slider(_("Images"), low, high, start, step=step, key=f"{key}_n")


def _localisation(mgr, owner, job, arms, methods, n, progress):
    models, data = load_networks(mgr, owner, job, arms)
    if data.masks_val is None:
        raise AttributionError(
            f"this run's data ({data.name}) has no object masks; only the built-in Shapes has",
            fix="race two nets on Shapes on the Compare page to measure this",
        )
    idx = pick_images(None, data.y_val.cpu(), "random", n, seed=0)
    return compare_localisation(
        models,
        take(data.x_val, idx),
        take(data.masks_val, idx).cpu(),
        [AttributionRequest(method=m) for m in methods],
        labels=take(data.y_val, idx),
        progress=progress,
    )


def sanity_tab(mgr, owner: str, info: JobInfo, arms: list[str]) -> None:
    st.markdown(
        _(
            "Adebayo et al. (2018) asked whether a map explains the **model** "
            "or just the image: replace the weights by random ones, from the "
            "output layer down to the first, and see if the map changes. One "
            "that stays the same (rank correlation above "
            "{threshold:g} with the original at every stage) "
            "does not depend on the model, like the edge detector drawn in "
            "grey as the control."
        ).format(threshold=INDEPENDENCE_THRESHOLD)
    )
    chosen, n = _methods_and_images(
        ["saliency", "integrated_gradients", "guided_backprop", "gradcam"],
        state.EXPLAIN_SANITY,
        (2, 16, 4, 1),
    )
    if st.button(
        _("Run the sanity check"),
        icon=":material/shuffle:",
        key=f"{state.EXPLAIN_SANITY}_go",
        disabled=not chosen,
    ):
        found = compute(
            _("the sanity check"),
            "sanity",
            lambda progress: _sanity(mgr, owner, info.id, arms, chosen, n, progress),
        )
        if found is not None:
            state.set_explain_result("sanity", info.id, found)
    reports = state.explain_result("sanity", info.id)
    if reports is not None:
        show_sanity(reports)


def _sanity(mgr, owner, job, arms, methods, n, progress) -> dict[str, SanityReport]:
    models, data = load_networks(mgr, owner, job, arms)
    idx = pick_images(None, data.y_val.cpu(), "random", n, seed=0)
    return sanity_checks(
        models,
        take(data.x_val, idx),
        [AttributionRequest(method=m) for m in methods],
        labels=take(data.y_val, idx),
        progress=progress,
    )


def show_sanity(reports: dict[str, SanityReport]) -> None:
    """One chart per network, its flags, and the black-pixel note where it matters."""
    cols = st.columns(len(reports))
    for col, (arm, report) in zip(cols, reports.items(), strict=True):
        col.plotly_chart(
            af.sanity_figure(report, title=_("Sanity check · {arm}").format(arm=arm)),
            key=f"ex_sanity_{arm}",
            width="stretch",
        )
        for curve in report.curves:
            if curve.depends_on_model:
                continue
            if curve.method in CONTROLS:
                col.caption(
                    _("{method}: flat, as a control should be.").format(method=curve.method)
                )
                continue
            text = _(
                "**{method}** does not depend on the model ({arm}): its maps "
                "stay above {threshold:g} even with every weight random."
            ).format(method=curve.method, arm=arm, threshold=report.threshold)
            if curve.depends_on_model_nonzero:
                low = min(curve.correlation_nonzero[1:])
                text += " " + _(
                    "Over the non-black pixels alone it falls to {low:.2f}: what stays "
                    "the same is the black background."
                ).format(low=low)
            col.warning(text, icon=":material/report:")
    black = max(r.black_share for r in reports.values())
    if black > 0:
        st.caption(
            _("{black:.0%} of these images' pixels are exactly black. {note}").format(
                black=black, note=_(BLACK_PIXELS)
            )
        )
