"""The Explain page's first tab: attribution maps of the chosen networks side by side on
the same images, with their probabilities, Integrated Gradients' completeness and the
downloads. Drawing only; `core.attribution` computes."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from app import attribution_figures as af
from app import attribution_tables as tables
from app import state
from app.explain_run import compute, load_networks
from app.i18n import N_, _
from core.attribution import (
    BASELINES,
    METHODS,
    PICKS,
    SMOOTHGRAD,
    TARGETS,
    AttributionRequest,
    ImageMaps,
    choose_images,
    explain_images,
    shared_feature_map_blocks,
    take,
)
from core.jobs import JobInfo

LAST = N_("the last conv block")


@dataclass(frozen=True)
class ImageChoice:
    """Which validation images: `how` is a key of PICKS."""

    how: str
    k: int
    seed: int
    cls: int | None


def maps_tab(mgr, owner: str, info: JobInfo, arms: list[str]) -> None:
    st.markdown(_("**Images** from the validation set"))
    images = _choose_images(info.classes)
    st.markdown(_("**Method**"))
    settings, blocks = _choose_method(info, arms)
    c = st.columns([2, 1, 2])
    target = c[0].radio(
        _("Explain"), list(TARGETS), format_func=TARGETS.get, horizontal=True, key="ex_target"
    )
    if target == "class":
        settings["target_class"] = c[1].selectbox(
            _("Class to explain"),
            range(len(info.classes)),
            format_func=lambda i: info.classes[i],
            key="ex_target_class",
        )
    per_image = c[2].toggle(
        _("One colour scale per image"),
        key=state.EXPLAIN_PER_IMAGE,
        help=_(
            "Off: one scale for every map. On: each image its own, still shared by the networks."
        ),
    )
    gradcam_impossible = settings["method"] == "gradcam" and not blocks
    if st.button(
        _("Explain"),
        type="primary",
        icon=":material/visibility:",
        key=state.EXPLAIN_GO,
        disabled=gradcam_impossible,
    ):
        settings.update(target=target, seed=images.seed)
        found = compute(
            _("the attribution maps"),
            "maps",
            lambda progress: _maps(mgr, owner, info, arms, images, settings, progress),
        )
        if found is not None:
            state.set_explain_result("maps", info.id, found)
    found = state.explain_result("maps", info.id)
    if found is not None:
        show_maps(found, info.classes, info.id, per_image=per_image)


def _maps(mgr, owner, info, arms, images: ImageChoice, settings, progress) -> ImageMaps:
    """The computation behind the button: copy the networks, pick the images, attribute."""
    request = AttributionRequest(**settings)  # checked before anything is copied
    models, data = load_networks(mgr, owner, info.id, arms)
    idx = choose_images(
        models,
        data.x_val,
        data.y_val,
        images.how,
        images.k,
        seed=images.seed,
        cls=images.cls,
        classes=data.classes,
    )
    x, labels = take(data.x_val, idx), take(data.y_val, idx)
    return explain_images(models, x, labels, idx, request, progress=progress)


def _choose_images(classes: tuple[str, ...]) -> ImageChoice:
    c = st.columns([2, 1, 1, 1])
    how = c[0].radio(
        _("Which"), list(PICKS), format_func=PICKS.get, horizontal=True, key=state.EXPLAIN_PICK
    )
    k = c[1].slider(_("How many"), 1, 8, 4, key=state.EXPLAIN_K)
    cls = None
    if how == "class":
        cls = c[2].selectbox(
            _("Class"), range(len(classes)), format_func=lambda i: classes[i], key="ex_cls"
        )
    if how != "misclassified":
        seed = c[3].number_input(_("Seed"), min_value=0, value=0, key="ex_seed")
    else:
        seed = 0
        c[2].caption(_("Images some network gets wrong, most confidently wrong first."))
    return ImageChoice(how, k, int(seed), cls)


def _choose_method(info: JobInfo, arms: list[str]) -> tuple[dict, list[int]]:
    """The method and its settings (AttributionRequest's keywords), and the blocks every
    chosen network could show GradCAM of."""
    c = st.columns([2, 1, 1, 1])
    method = c[0].selectbox(
        _("Method"), list(METHODS), format_func=lambda m: METHODS[m].title, key=state.EXPLAIN_METHOD
    )
    st.caption(METHODS[method].explanation)
    settings: dict = {"method": method}
    specs = [info.specs[a] for a in arms]
    blocks = shared_feature_map_blocks(specs)
    if METHODS[method].baseline:
        settings["baseline"] = c[1].selectbox(
            _("Baseline") if method != "occlusion" else _("Patch filled with"),
            list(BASELINES),
            help="; ".join(f"{b}: {t}" for b, t in BASELINES.items()),
            key="ex_baseline",
        )
    if method == "integrated_gradients":
        settings["n_steps"] = c[2].slider(
            _("Steps on the path"), 5, 300, 50, step=5, key="ex_steps"
        )
    elif method == "gradient_shap":
        settings["gradshap_samples"] = c[2].slider(_("Random draws"), 5, 64, 20, key="ex_gs")
    elif method == "occlusion":
        side = min(specs[0].input_shape[1:])
        window = c[2].slider(_("Window (px)"), 1, side, min(4, side), key=state.window_key(side))
        settings["occlusion_window"] = window
        settings["occlusion_stride"] = c[3].slider(
            _("Stride (px)"), 1, window, max(1, window // 2), key=f"ex_stride_{window}"
        )
    elif method == "gradcam":
        settings["gradcam_block"] = _choose_block(c[1], specs[0], blocks)
    if METHODS[method].smoothgrad:
        samples = c[3].slider(_("SmoothGrad samples (0 = off)"), 0, 100, 0, step=5, key="ex_sg")
        settings["smoothgrad_samples"] = samples
        if samples:
            settings["noise_level"] = c[3].slider(
                _("Noise (share of range)"), 0.05, 0.5, 0.15, key="ex_noise"
            )
            st.caption(SMOOTHGRAD)
    return settings, blocks


def _choose_block(column, spec, blocks: list[int]) -> int | None:
    if not blocks:
        st.warning(
            _(
                "GradCAM needs a convolutional or residual block at the same place in "
                "every network chosen; choose another method."
            )
        )
    return column.selectbox(
        _("Block"),
        [None, *blocks],
        format_func=lambda b: _(LAST) if b is None else f"{b} · {spec.blocks[b].kind}",
        key=state.EXPLAIN_BLOCK,
    )


def show_maps(found: ImageMaps, classes, job: str, *, per_image: bool) -> None:
    """The grid, the probabilities, the completeness table and the downloads."""
    results = found.results
    m = METHODS[next(iter(results.values())).request.method]
    st.markdown(f"**{m.title}**: {m.explanation}")
    fig = af.attribution_grid(
        found.images,
        results,
        classes,
        labels=found.labels,
        indices=found.indices,
        per_image=per_image,
    )
    st.plotly_chart(
        fig,
        key="ex_grid",
        width="stretch",
        config={"toImageButtonOptions": {"format": "png", "filename": f"{job}_maps", "scale": 2}},
    )
    scale = (
        _("each image on its own colour scale, shared by the networks")
        if per_image
        else _("one colour scale for every map")
    )
    speeds = " · ".join(
        _("{arm}: {ms:.0f} ms per image").format(arm=a, ms=r.seconds_per_image * 1000)
        for a, r in results.items()
    )
    target = next(iter(results.values())).request.target
    st.caption(
        _("Maps of {target} · {scale} · {speeds}").format(
            target=TARGETS[target], scale=scale, speeds=speeds
        )
    )
    st.dataframe(
        tables.probability_rows(results, classes, labels=found.labels, indices=found.indices),
        hide_index=True,
        width="stretch",
    )
    _completeness(found)
    _downloads(found, classes, job)


def _completeness(found: ImageMaps) -> None:
    deltas = tables.delta_rows(found.results, indices=found.indices)
    if not deltas:
        return
    st.markdown(
        _(
            "**Completeness.** Integrated Gradients promises that a map's pixels sum to "
            "how much the class score changed from the baseline to the image, "
            "f(x) − f(baseline). *delta* is what is missing, and *gap %* its share of "
            "that change: Sundararajan et al. ask for 5% or less. When the image and the "
            "baseline score almost alike, even a small delta is a large share."
        )
    )
    st.dataframe(deltas, hide_index=True, width="stretch")
    worst = max(
        v
        for row in deltas
        for key, v in row.items()
        if key.endswith(_("{net} · gap %").format(net=""))
    )
    if worst > 5:
        st.warning(
            _(
                "The largest gap is {worst:.0f}% of the score change: add steps "
                "on the path (or try another baseline) and compute again."
            ).format(worst=worst)
        )


def _downloads(found: ImageMaps, classes, job: str) -> None:
    st.caption(
        _(
            "To save the picture as PNG, use the camera button at the top right of the chart. "
            "The raw values: .npy holds one network's maps as (images, height, width), "
            "channels summed; the CSV holds every value of every map, one per line."
        )
    )
    cols = st.columns(len(found.results) + 1)
    for n, (arm, r) in enumerate(found.results.items()):
        cols[n].download_button(
            _("{arm} · .npy").format(arm=arm),
            tables.maps_npy(r),
            file_name=f"{job}_{arm}_maps.npy".replace(" ", "_"),
            mime="application/octet-stream",
            on_click="ignore",
            key=f"ex_npy_{arm}",
        )
    cols[-1].download_button(
        _("All maps · CSV"),
        tables.maps_csv(found.results, classes, indices=found.indices),
        file_name=f"{job}_maps.csv",
        mime="text/csv",
        on_click="ignore",
        key="ex_csv",
    )
