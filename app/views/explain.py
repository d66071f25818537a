"""Explain: Captum attribution maps of a run's networks, side by side on the same images and
one colour scale; Integrated Gradients' completeness; downloads; and two checks that the
maps can be trusted: localisation on Shapes masks, and Adebayo et al.'s sanity check."""

import logging
import time

import streamlit as st
import torch

from app import attribution_figures as af
from app import services, state
from core.attribution import (
    BASELINES,
    METHODS,
    SMOOTHGRAD,
    TARGETS,
    AttributionRequest,
    Cancelled,
    attribute,
    check_images,
    frozen_copy,
    probabilities,
    scaled_progress,
)
from core.attribution_quality import (
    CONTROLS,
    INDEPENDENCE_THRESHOLD,
    compare_localisation,
    sanity_check,
)
from core.jobs import CANCELLED, DIVERGED, FAILED, PAUSED, JobError

MAX_POOL = 2048  # validation images scored to find misclassified ones: a second on a CPU
CAM_KINDS = ("conv", "basic", "bottleneck")  # blocks whose output is a stack of feature maps
log = logging.getLogger(__name__)

st.title("Explain")
owner = state.owner()
mgr = services.job_manager()
note = st.empty()  # always there, so the note does not shift the tabs (a shift resets them)
stopped = state.explain_pending()
if stopped:  # the script was stopped mid-computation: by Cancel, or by another click
    note.info(f"Stopped computing {stopped}; nothing of it was kept.", icon=":material/cancel:")
    state.set_explain_pending(None)

runs = sorted(
    (i for i in mgr.list(owner) if i.status not in (CANCELLED, FAILED)),
    key=lambda i: i.created,
    reverse=True,
)
if not runs:
    st.info(
        "No runs yet in this browser. Train one on the Train or Compare page; once it has "
        "finished (or while it is paused), its networks can be explained here."
    )
    st.stop()

by_id = {i.id: i for i in runs}
job = st.selectbox(
    "Run",
    list(by_id),
    format_func=lambda r: f"{r} · {by_id[r].name} · {by_id[r].status}",
    key="ex_run",
)
info = by_id[job]
try:  # refuses a queued or running run: its weights change under our feet
    copies = {arm: mgr.copy_model(job, owner, arm) for arm in info.arms}
except JobError as e:
    st.warning(f"{e}.", icon=":material/pending:")
    st.stop()
data = next(iter(copies.values()))[1]
classes = data.classes
if info.status == PAUSED:
    st.caption(f"Paused at step {info.step:,}: the maps show the weights as they are now.")
elif info.status == DIVERGED:
    st.warning("This run diverged: its weights may hold NaN or huge values, so maps may be blank.")
arms = list(info.arms)
if len(arms) > 1:
    arms = st.multiselect("Networks, side by side", arms, default=arms, key=f"ex_nets_{job}")
    if not arms:
        st.info("Choose at least one network.")
        st.stop()


def _eta(share: float, elapsed: float) -> str:
    if share < 0.02 or elapsed < 1.0:
        return ""
    left = round(elapsed * (1 - share) / share)
    return (
        f" · about {left // 60} min {left % 60:02d} s left" if left >= 60 else f" · {left} s left"
    )


def _compute(what: str, key: str, compute):
    """`compute(progress)` under a progress bar with a Cancel button; its result, or None
    after showing why there is none.

    Cancelling: while this script runs, a click on any widget makes Streamlit stop it at
    its next `st.*` call, and the progress callback makes one between two passes. So the
    Cancel button needs no handler: clicking it ends the computation there. Streamlit does
    it by raising a RerunException, a BaseException that the except clauses below let
    through; nothing partial is stored, and the pending note tells the next run.
    """
    cancel_slot, bar_slot = st.empty(), st.empty()
    cancel_slot.button("Cancel", icon=":material/cancel:", key=f"ex_cancel_{key}")
    bar = bar_slot.progress(0.0, text=f"Computing {what}…")
    start = time.monotonic()

    def progress(share: float, message: str) -> None:  # an st call: where a click stops us
        share = min(max(share, 0.0), 1.0)
        bar.progress(share, text=message + _eta(share, time.monotonic() - start))

    state.set_explain_pending(what)
    out = None
    try:
        out = compute(progress)
    except Cancelled as e:
        st.warning(f"{e}; nothing was kept.")
    except ValueError as e:  # AttributionError, JobError: the message says what to change
        st.error(f"Could not compute {what}: {e}", icon=":material/error:")
    except Exception as e:  # torch (out of memory, ...): say so, keep the server going
        log.exception("computing %s failed", what)
        st.error(f"Computing {what} failed: {type(e).__name__}: {e}", icon=":material/error:")
    state.set_explain_pending(None)
    cancel_slot.empty()
    bar_slot.empty()
    return out


def _models() -> dict:
    """Frozen copies taking raw pixels (they normalise as the run did), chosen nets only."""
    return {a: frozen_copy(copies[a][0], mean=data.mean, std=data.std) for a in arms}


def _take(t: torch.Tensor, idx) -> torch.Tensor:
    return t[torch.as_tensor(idx, dtype=torch.int64, device=t.device)]


def _cam_blocks() -> list[int]:
    """Conv or residual blocks every chosen network has at the same index."""
    sets = [
        {i for i, b in enumerate(copies[a][0].spec.blocks) if b.kind in CAM_KINDS} for a in arms
    ]
    return sorted(set.intersection(*sets))


def _stored(kind: str) -> dict | None:
    found = state.explain_result(kind)
    return found if found is not None and found["run"] == job else None


maps_tab, local_tab, sanity_tab = st.tabs(
    ["Attribution maps", "Localisation (Shapes)", "Sanity check"]
)

# --- attribution maps --------------------------------------------------------------------

with maps_tab:
    st.markdown("**Images** from the validation set")
    c = st.columns([2, 1, 1, 1])
    how = c[0].radio(
        "Which", list(af.PICKS), format_func=af.PICKS.get, horizontal=True, key="ex_how"
    )
    k = c[1].slider("How many", 1, 8, 4, key="ex_k")
    cls = None
    if how == "class":
        cls = c[2].selectbox(
            "Class", range(len(classes)), format_func=lambda i: classes[i], key="ex_cls"
        )
    if how != "misclassified":
        seed = c[3].number_input("Seed", min_value=0, value=0, key="ex_seed")
    else:
        seed = 0
        c[2].caption("Images some network gets wrong, most confidently wrong first.")

    st.markdown("**Method**")
    c = st.columns([2, 1, 1, 1])
    method = c[0].selectbox(
        "Method", list(METHODS), format_func=lambda m: METHODS[m].title, key="ex_method"
    )
    st.caption(METHODS[method].explanation)
    options: dict = {}
    if METHODS[method].baseline:
        options["baseline"] = c[1].selectbox(
            "Baseline" if method != "occlusion" else "Patch filled with",
            list(BASELINES),
            help="; ".join(f"{b}: {t}" for b, t in BASELINES.items()),
            key="ex_baseline",
        )
    if method == "integrated_gradients":
        options["n_steps"] = c[2].slider("Steps on the path", 5, 300, 50, step=5, key="ex_steps")
    elif method == "gradient_shap":
        options["gradshap_samples"] = c[2].slider("Random draws", 5, 64, 20, key="ex_gs")
    elif method == "occlusion":
        side = min(data.input_shape[1:])
        window = c[2].slider("Window (px)", 1, side, min(4, side), key=f"ex_window_{side}")
        options["occlusion_window"] = window
        options["occlusion_stride"] = c[3].slider(
            "Stride (px)", 1, window, max(1, window // 2), key=f"ex_stride_{window}"
        )
    elif method == "gradcam":
        blocks = _cam_blocks()
        if not blocks:
            st.warning(
                "GradCAM needs a convolutional or residual block at the same place in "
                "every network chosen; choose another method."
            )
        kinds = copies[arms[0]][0].spec.blocks
        options["gradcam_block"] = c[1].selectbox(
            "Block",
            [None, *blocks],
            format_func=lambda b: "the last conv block" if b is None else f"{b} · {kinds[b].kind}",
            key="ex_block",
        )
    if METHODS[method].smoothgrad:
        samples = c[3].slider("SmoothGrad samples (0 = off)", 0, 100, 0, step=5, key="ex_sg")
        options["smoothgrad_samples"] = samples
        if samples:
            options["noise_level"] = c[3].slider(
                "Noise (share of range)", 0.05, 0.5, 0.15, key="ex_noise"
            )
            st.caption(SMOOTHGRAD)

    c = st.columns([2, 1, 2])
    target = c[0].radio(
        "Explain", list(TARGETS), format_func=TARGETS.get, horizontal=True, key="ex_target"
    )
    if target == "class":
        options["target_class"] = c[1].selectbox(
            "Class to explain",
            range(len(classes)),
            format_func=lambda i: classes[i],
            key="ex_target_class",
        )
    per_image = c[2].toggle(
        "One colour scale per image",
        key="ex_per_image",
        help="Off: one scale for every map. On: each image its own, still shared by the networks.",
    )

    if st.button(
        "Explain",
        type="primary",
        icon=":material/visibility:",
        key="ex_go",
        disabled=method == "gradcam" and not _cam_blocks(),
    ):

        def maps(progress):
            request = AttributionRequest(method=method, target=target, seed=int(seed), **options)
            models = _models()
            labels_all = data.y_val
            if how == "misclassified":
                pool = min(len(labels_all), MAX_POOL)
                x = data.x_val[:pool]
                probs = torch.stack(
                    [probabilities(m, check_images(m, x), 256).cpu() for m in models.values()]
                )
                idx = af.pick_images(probs, labels_all[:pool].cpu(), how, k)
            else:
                idx = af.pick_images(None, labels_all.cpu(), how, k, int(seed), cls)
            if len(idx) == 0:
                raise ValueError(f"the validation set has no image of class {classes[cls]}")
            images, labels = _take(data.x_val, idx), _take(labels_all, idx)
            results = {}
            for j, (arm, model) in enumerate(models.items()):
                part = scaled_progress(progress, j / len(models), (j + 1) / len(models))
                results[arm] = attribute(model, images, request, labels=labels, progress=part)
            return {
                "run": job,
                "images": images.cpu(),
                "labels": labels.cpu(),
                "indices": idx,
                "results": results,
                "target": target,
            }

        found = _compute("the attribution maps", "maps", maps)
        if found is not None:
            state.set_explain_result("maps", found)

    found = _stored("maps")
    if found is not None:
        results = found["results"]
        first = next(iter(results.values()))
        m = METHODS[first.request.method]
        st.markdown(f"**{m.title}**: {m.explanation}")
        fig = af.attribution_grid(
            found["images"],
            results,
            classes,
            labels=found["labels"],
            indices=found["indices"],
            per_image=per_image,
        )
        st.plotly_chart(
            fig,
            key="ex_grid",
            width="stretch",
            config={
                "toImageButtonOptions": {"format": "png", "filename": f"{job}_maps", "scale": 2}
            },
        )
        st.caption(
            f"Maps of {TARGETS[found['target']]} · "
            + (
                "each image on its own colour scale, shared by the networks · "
                if per_image
                else "one colour scale for every map · "
            )
            + " · ".join(
                f"{a}: {r.seconds_per_image * 1000:.0f} ms per image" for a, r in results.items()
            )
        )
        st.dataframe(
            af.probability_rows(results, classes, labels=found["labels"], indices=found["indices"]),
            hide_index=True,
            width="stretch",
        )
        deltas = af.delta_rows(results, indices=found["indices"])
        if deltas:
            st.markdown(
                "**Completeness.** Integrated Gradients promises that a map's pixels sum to "
                "how much the class score changed from the baseline to the image, "
                "f(x) − f(baseline). *delta* is what is missing, and *gap %* its share of "
                "that change: Sundararajan et al. ask for 5% or less. When the image and the "
                "baseline score almost alike, even a small delta is a large share."
            )
            st.dataframe(deltas, hide_index=True, width="stretch")
            worst = max(v for row in deltas for key, v in row.items() if key.endswith("gap %"))
            if worst > 5:
                st.warning(
                    f"The largest gap is {worst:.0f}% of the score change: add steps on the "
                    "path (or try another baseline) and compute again."
                )
        st.caption(
            "To save the picture as PNG, use the camera button at the top right of the chart. "
            "The raw values: .npy holds one network's maps as (images, height, width), "
            "channels summed; the CSV holds every value of every map, one per line."
        )
        cols = st.columns(len(results) + 1)
        for n, (arm, r) in enumerate(results.items()):
            cols[n].download_button(
                f"{arm} · .npy",
                af.maps_npy(r),
                file_name=f"{job}_{arm}_maps.npy".replace(" ", "_"),
                mime="application/octet-stream",
                on_click="ignore",
                key=f"ex_npy_{arm}",
            )
        cols[-1].download_button(
            "All maps · CSV",
            af.maps_csv(results, classes, indices=found["indices"]),
            file_name=f"{job}_maps.csv",
            mime="text/csv",
            on_click="ignore",
            key="ex_csv",
        )

# --- localisation ------------------------------------------------------------------------

with local_tab:
    st.markdown(
        "Does the map point at the object? On Shapes every image comes with a mask of its "
        "shape. **On the object**: the share of the map's positive attribution inside the "
        "mask. **Pointing game**: how often the map's highest pixel lands on the object "
        "(Zhang et al. 2016). **Chance**: what a map spread evenly would score."
    )
    if data.masks_val is None:
        st.info(
            f"This run's data ({data.name}) has no object masks; only the built-in Shapes has. "
            "Race two nets on Shapes on the Compare page to measure this."
        )
    else:
        c = st.columns([3, 1])
        chosen = c[0].multiselect(
            "Methods",
            list(METHODS),
            default=["saliency", "integrated_gradients", "gradcam"],
            format_func=lambda m: METHODS[m].title,
            key="ex_loc_methods",
        )
        n_loc = c[1].slider("Images", 8, 128, 32, step=8, key="ex_loc_n")
        st.caption("Each method with its default settings, on the same random images.")
        if st.button("Measure", icon=":material/straighten:", key="ex_loc_go", disabled=not chosen):

            def measure(progress):
                idx = af.pick_images(None, data.y_val.cpu(), "random", n_loc, seed=0)
                rows = compare_localisation(
                    _models(),
                    _take(data.x_val, idx),
                    _take(data.masks_val, idx).cpu(),
                    [AttributionRequest(method=m) for m in chosen],
                    labels=_take(data.y_val, idx),
                    progress=progress,
                )
                return {"run": job, "rows": rows, "images": len(idx)}

            found = _compute("the localisation scores", "loc", measure)
            if found is not None:
                state.set_explain_result("localisation", found)
        found = _stored("localisation")
        if found is not None:
            st.dataframe(af.localisation_rows(found["rows"]), hide_index=True, width="stretch")
            st.caption(
                f"Means over {found['images']} validation images; maps of the predicted class."
            )

# --- sanity check ------------------------------------------------------------------------

with sanity_tab:
    st.markdown(
        "Adebayo et al. (2018) asked whether a map explains the **model** or just the "
        "image: replace the weights by random ones, from the output layer down to the "
        "first, and see if the map changes. One that stays the same (rank correlation "
        f"above {INDEPENDENCE_THRESHOLD:g} with the original at every stage) does not "
        "depend on the model, like the edge detector drawn in grey as the control."
    )
    c = st.columns([3, 1])
    chosen = c[0].multiselect(
        "Methods",
        list(METHODS),
        default=["saliency", "integrated_gradients", "guided_backprop", "gradcam"],
        format_func=lambda m: METHODS[m].title,
        key="ex_san_methods",
    )
    n_san = c[1].slider("Images", 2, 16, 4, key="ex_san_n")
    if st.button(
        "Run the sanity check", icon=":material/shuffle:", key="ex_san_go", disabled=not chosen
    ):

        def check(progress):
            idx = af.pick_images(None, data.y_val.cpu(), "random", n_san, seed=0)
            images, labels = _take(data.x_val, idx), _take(data.y_val, idx)
            models = _models()
            reports = {}
            for j, (arm, model) in enumerate(models.items()):
                reports[arm] = sanity_check(
                    model,
                    images,
                    [AttributionRequest(method=m) for m in chosen],
                    labels=labels,
                    progress=scaled_progress(progress, j / len(models), (j + 1) / len(models)),
                )
            return {"run": job, "reports": reports}

        found = _compute("the sanity check", "sanity", check)
        if found is not None:
            state.set_explain_result("sanity", found)
    found = _stored("sanity")
    if found is not None:
        reports = found["reports"]
        cols = st.columns(len(reports))
        for col, (arm, report) in zip(cols, reports.items(), strict=True):
            col.plotly_chart(
                af.sanity_figure(report, title=f"Sanity check · {arm}"),
                key=f"ex_sanity_{arm}",
                width="stretch",
            )
            for curve in report.curves:
                if curve.depends_on_model:
                    continue
                if curve.method in CONTROLS:
                    col.caption(f"{curve.method}: flat, as a control should be.")
                else:
                    col.warning(
                        f"**{curve.method}** does not depend on the model ({arm}): its maps "
                        f"stay above {report.threshold:g} even with every weight random.",
                        icon=":material/report:",
                    )
