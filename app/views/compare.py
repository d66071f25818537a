"""Compare: race a plain net against its residual twin, reproduce He et al.'s
degradation experiment, follow the running experiment, overlay finished runs, and see
gradient flow at init."""

import streamlit as st

from app import choices, figures, lesson_chrome, live, services, state
from app.i18n import _, fill, tr
from core import experiments
from core.analysis import depth_sweep
from core.jobs import ACTIVE


def _start(owner: str, experiment: experiments.Experiment) -> None:
    """Queue the experiment; show it in its own tab, or say why it cannot start."""
    started = services.submit(
        owner, experiment.name, experiment.specs, experiment.data, experiment.config
    )
    if started.error:
        st.error(_("Could not start: {error}").format(error=started.error), icon=":material/error:")
        return
    state.set_compare_job(started.job)
    state.open_tab(state.COMPARE_TAB, _(choices.LIVE_TAB))
    st.rerun()


def _followed(owner: str) -> str | None:
    """The experiment started here, else (after a reload) this browser's newest active one."""
    job = state.compare_job()
    if job is None:
        mine = services.job_manager().list(owner)
        active = [i for i in mine if i.active and experiments.is_experiment(i.name)]
        if active:
            job = max(active, key=lambda i: i.created).id
            state.set_compare_job(job)
    return job


def race_tab(owner: str) -> None:
    st.caption(
        _(
            "Both nets start from the same weights and see the same batches in the same "
            "order; the only difference is the skip connections. Images at {size}x{size}."
        ).format(size=experiments.SIZE)
    )
    cols = st.columns([2, 2, 1, 1], vertical_alignment="bottom")
    labels = choices.RACE_LABELS
    depth = cols[0].selectbox(
        _("Depth"),
        labels,
        index=labels.index(choices.DEFAULT_RACE),
        format_func=_,
        key=state.RACE_DEPTH,
    )
    data = cols[1].selectbox(
        _("Data"), choices.RACE_DATA, format_func=choices.dataset_title, key=state.RACE_DATA
    )
    steps = cols[2].number_input(
        _("Steps"),
        value=choices.RACE_STEPS,
        min_value=10,
        max_value=20_000,
        step=50,
        key=state.RACE_STEPS,
    )
    warning = experiments.too_short(experiments.depth_of(depth), int(steps))
    if warning:
        st.warning(tr(warning), icon=":material/info:")
    if cols[3].button(_("Race them"), icon=":material/sports_score:", type="primary"):
        _start(owner, experiments.race(depth, data, int(steps)))


def degradation_tab(owner: str) -> None:
    st.markdown(
        _(
            "He et al. (2015) found that a **56-layer plain net trains worse than a 20-layer "
            "one**: not overfitting, the training loss itself is higher, while their residual "
            "56-layer net did not suffer. This trains all four (narrow, on {data} at "
            "{size}x{size}, interleaved). What to look for in the training loss: is Plain-56 "
            "above Plain-20, and is ResNet-56 at or below ResNet-20? The live tab says what "
            "this run shows, from its numbers."
        ).format(data=choices.dataset_title(choices.DEGRADATION_DATA), size=experiments.SIZE)
    )
    cols = st.columns([1, 3], vertical_alignment="bottom")
    steps = cols[0].number_input(
        _("Steps per net"),
        value=choices.DEGRADATION_STEPS,
        min_value=10,
        max_value=20_000,
        step=50,
        key=state.DEGRADATION_STEPS,
    )
    cols[1].caption(fill(choices.DEGRADATION_TIME, steps=int(steps)))
    warning = experiments.too_short(max(experiments.DEGRADATION_DEPTHS), int(steps))
    if warning:
        st.warning(tr(warning), icon=":material/info:")
    if st.button(_("Run the experiment"), icon=":material/science:", type="primary"):
        _start(owner, experiments.degradation(int(steps)))


def live_tab(job: str | None) -> None:
    if job is None:
        st.info(_("Start a race or the degradation experiment: it trains here, live."))
    else:
        live.run_panel(job, key="compare", verdict=experiments.verdict)


def overlay_tab(owner: str) -> None:
    mgr = services.job_manager()
    runs = [i for i in mgr.list(owner) if i.status not in ACTIVE and i.step > 0]
    if not runs:
        st.info(_("Finished runs of this session appear here, to overlay on the same axes."))
        return
    names = {r.id: r.name for r in runs}
    options = [(r.id, arm) for r in runs for arm in r.arms]
    picked = st.multiselect(
        _("Runs to overlay"),
        options,
        default=options[:2],
        format_func=lambda o: f"{o[0]} · {o[1]} ({names[o[0]]})",
        key=state.OVERLAY_PICK,
    )
    if picked:
        snaps = {f"{rid} · {arm}": mgr.logs(rid, owner)[arm].snapshot() for rid, arm in picked}
        live.charts(snaps, key="overlay")


@st.cache_data(show_spinner=False, max_entries=32)
def _flows(depths: tuple[int, ...], bn: bool, act: str):
    return depth_sweep(depths, batch_norm=(bn,), activations=(act,))


def init_tab() -> None:
    st.caption(
        _(
            "One batch forward and backward through a fresh net, no training: how large is "
            "each layer's gradient? Compare the first layer with the last block, plain against "
            "residual: what holds depends on the activation and on BatchNorm."
        )
    )
    cols = st.columns(3)
    depths = cols[0].multiselect(
        _("Depths (6n+2)"), choices.INIT_DEPTHS, default=[20, 56, 110], key=state.INIT_DEPTHS
    )
    bn = cols[1].toggle(_("BatchNorm"), value=False, key=state.INIT_BN)
    act = cols[2].selectbox(
        _("Activation"), choices.INIT_ACTIVATIONS, format_func=choices.label, key=state.INIT_ACT
    )
    if not depths:
        return
    with st.spinner(_("Measuring gradients…")):
        points = _flows(tuple(sorted(depths)), bn, act)
    for finding in experiments.flow_findings(points):
        st.markdown(f"**{_('Measured')}:** {tr(finding)}")
    a, b = st.columns(2)
    a.plotly_chart(
        figures.grad_flow_figure([p.flow for p in points]), key="init_flow", width="stretch"
    )
    b.plotly_chart(figures.sweep_figure(points), key="init_sweep", width="stretch")


lesson_chrome.language()  # the URL's language, also when this page runs alone
st.title(_("Compare plain and residual"))
owner = state.owner()
job = _followed(owner)
state.apply_open_tab(state.COMPARE_TAB)
race, degrade, running, overlay, init = st.tabs(
    [_(tab) for tab in choices.COMPARE_TABS],  # a reload finds the running experiment open
    default=_(choices.LIVE_TAB) if job else None,
    key=state.COMPARE_TAB,
    on_change="rerun",
)
with race:
    race_tab(owner)
with degrade:
    degradation_tab(owner)
with running:
    if running.open is not False:  # a hidden tab's run is not polled
        live_tab(job)
with overlay:
    overlay_tab(owner)
with init:
    if init.open is not False:  # measured only when looked at: seconds of CPU per visit
        init_tab()
