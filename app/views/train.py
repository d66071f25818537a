"""Train: pick data and settings, start, and watch the run live."""

import streamlit as st

from app import lesson_chrome, live, runs_actions, services, state
from app.choices import (
    DATASET_NAMES,
    DEFAULTS,
    OPTIMIZER_LABELS,
    SCHEDULE_LABELS,
    SIZES,
    dataset_title,
    option_label,
    short_title,
)
from app.i18n import _, number, tr
from app.markup import plain
from core.config import OPTIMIZERS, SCHEDULES, TrainConfig
from core.data import DataError, DataRequest
from core.experiments import is_experiment
from core.spec import NetSpec
from core.training import describe_device, pick_device
from core.uploads import import_upload


def _followed(owner: str) -> str | None:
    """The run this page shows: the one started here, else (after a reload) this
    browser's newest active run that is not a Compare experiment."""
    job = state.active_job()
    if job is None:
        active = [
            i for i in services.job_manager().list(owner) if i.active and not is_experiment(i.name)
        ]
        if active:
            job = max(active, key=lambda i: i.created).id
            state.set_active_job(job)
    return job


def _upload() -> None:
    """The zip of class folders: checked once per file, its report kept for the session."""
    st.caption(
        _(
            "A .zip with one folder per class (cat/…, dog/…), at least 2 classes of 10 "
            "images. Nothing in it is run or unpickled; images are checked, resized and kept "
            "on this server."
        )
    )
    zipped = st.file_uploader(_("Your zip"), type=["zip"], key=state.UPLOAD_ZIP)
    if zipped is None:
        return
    try:
        report = state.upload_report(zipped.file_id)
        if report is None:
            with st.spinner(_("Checking every image…")):
                report = import_upload(
                    zipped.getvalue(), owner=state.owner(), keep=services.store().uploads_in_use()
                )
            state.set_upload(zipped.file_id, report)
    except DataError as e:
        state.set_upload(None, None)
        st.error(
            _("{name} was not accepted: {error}").format(name=zipped.name, error=tr(e)),
            icon=":material/error:",
        )
        return
    counts = ", ".join(f"{c} ({n})" for c, n in zip(report.classes, report.counts, strict=True))
    st.success(
        _("{images} images in {classes} classes: {counts}.").format(
            images=number(sum(report.counts)), classes=len(report.classes), counts=counts
        )
    )
    if report.skipped:
        with st.expander(_("{n} files were left out").format(n=number(len(report.skipped)))):
            rows = [{_("file"): f, _("why"): tr(why)} for f, why in report.skipped]
            st.dataframe(rows, hide_index=True)


def _data() -> tuple[str, int, int]:
    """The dataset, its image size and how many training images (0: all)."""
    c = st.columns([3, 1, 1])
    name = c[0].selectbox(
        _("Dataset"), DATASET_NAMES, format_func=dataset_title, key=state.TRAIN_DATASET
    )
    size = c[1].selectbox(
        _("Image size (px)"), SIZES[name], key=state.train_setting_key("train_size", name)
    )
    subset = c[2].number_input(
        _("Training images (0 = all)"),
        min_value=0,
        value=0,
        step=100,
        key=state.train_setting_key("train_subset", name),
        help=_("A few hundred images train fast and show overfitting."),
    )
    if name == "upload":
        _upload()
    return name, size, int(subset)


def _optimisation(name: str, v: dict) -> None:
    """The first two rows of the form: optimizer, learning rate, budget, schedule."""
    d, k = DEFAULTS[name], lambda setting: state.train_setting_key(setting, name)
    r1 = st.columns(4)
    v["optimizer"] = r1[0].selectbox(
        _("Optimizer"),
        OPTIMIZERS,
        OPTIMIZERS.index(d.optimizer),
        format_func=option_label(OPTIMIZER_LABELS),
    )
    v["lr"] = r1[1].number_input(
        _("Learning rate"), value=d.lr, min_value=1e-6, max_value=10.0, format="%g", key=k("lr")
    )
    v["epochs"] = r1[2].number_input(
        _("Epochs"), value=d.epochs, min_value=1, max_value=1000, key=k("epochs")
    )
    v["batch_size"] = r1[3].number_input(
        _("Batch size"), value=d.batch_size, min_value=1, max_value=4096, key=k("batch")
    )
    r2 = st.columns(4)
    v["schedule"] = r2[0].selectbox(
        _("Schedule"),
        SCHEDULES,
        index=SCHEDULES.index(d.schedule),
        format_func=option_label(SCHEDULE_LABELS),
        key=k("schedule"),
    )
    v["warmup_steps"] = r2[1].number_input(
        _("Warm-up steps"), value=d.warmup_steps, min_value=0, key=k("warmup")
    )
    v["weight_decay"] = r2[2].number_input(
        _("Weight decay"),
        value=d.weight_decay,
        min_value=0.0,
        max_value=0.1,
        format="%g",
        key=k("wd"),
    )
    v["seed"] = r2[3].number_input(_("Seed"), value=0, min_value=0, key=state.SEED)


def _settings(name: str) -> tuple[TrainConfig, bool]:
    """The training settings form, starting from the dataset's defaults; and whether
    Start was pressed."""
    d = DEFAULTS[name]
    v: dict = {}
    with st.form("train_settings"):
        _optimisation(name, v)
        r3 = st.columns(4)
        v["momentum"] = r3[0].number_input(
            _("Momentum (SGD)"), value=d.momentum, min_value=0.0, max_value=0.999
        )
        v["augment"] = r3[1].toggle(
            _("Augment (crop + flip)"),
            value=d.augment,
            key=state.train_setting_key("augment", name),
        )
        v["label_smoothing"] = r3[2].number_input(
            _("Label smoothing"), value=0.0, min_value=0.0, max_value=0.5
        )
        start = st.form_submit_button(
            _("Start training"), icon=":material/play_arrow:", type="primary"
        )
    floats = ("lr", "momentum", "weight_decay", "label_smoothing")
    ints = ("epochs", "batch_size", "warmup_steps", "seed")
    v |= {f: float(v[f]) for f in floats} | {f: int(v[f]) for f in ints}
    return TrainConfig(**v), start


def _start(owner: str, spec: NetSpec, name: str, size: int, subset: int, config) -> None:
    """Queue the run (services.submit loads, fits and checks); follow it, or say why not."""
    digest = state.upload_digest() if name == "upload" else None
    request = None  # an upload not made yet: services.submit says what to do
    if name != "upload" or digest is not None:
        request = DataRequest(
            name=name, size=size, subset=subset or None, seed=config.seed, upload=digest
        )
    with st.spinner(_("Loading {dataset}…").format(dataset=dataset_title(name))):
        started = services.submit(
            owner, f"{spec.name} · {short_title(name)}", [spec], request, config
        )
    if started.error:
        st.error(
            _("Could not start: {error}").format(error=started.error),
            icon=":material/error:",
        )
    else:
        state.set_active_job(started.job)
        st.rerun()  # redrawn with the settings folded away, the run's charts on screen


lesson_chrome.language()  # the URL's language, also when this page runs alone
st.title(_("Train"))
owner = state.owner()
spec = state.current_spec()
st.caption(  # the name escaped: a name is never read as Markdown
    _("Network: {name} (change it on the Build page). This server trains on {device}.").format(
        name=plain(spec.name), device=describe_device(pick_device())
    )
)
runs_actions.saving_note(services.store())  # a data folder it cannot write
job = _followed(owner)
# Once a run exists the settings fold away, so its charts and controls fit the screen.
with st.expander(_("New run: data and settings")) if job else st.container():
    name, size, subset = _data()
    config, start = _settings(name)
    if start:
        _start(owner, spec, name, size, subset, config)
job = state.active_job()
if job is None:
    st.info(_("Start a run to see its loss, accuracy and gradients here, live."))
else:
    live.run_panel(job, key="train")
