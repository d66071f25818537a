"""Train: pick data and settings, start, and watch the run live."""

import dataclasses

import streamlit as st

from app import live, services, state
from app.choices import DATASET_TITLES, DEFAULTS, SIZES
from core.config import OPTIMIZERS, SCHEDULES, TrainConfig
from core.data import DataError, DataRequest
from core.jobs import Arm
from core.spec import SpecError, format_shape
from core.training import describe_device, pick_device
from core.uploads import import_upload

st.title("Train")
owner = state.owner()
spec = state.current_spec()
st.caption(
    f"Network: **{spec.name}** (change it on the Build page). "
    f"This server trains on {describe_device(pick_device())}."
)

c = st.columns([3, 1, 1])
name = c[0].selectbox(
    "Dataset", list(DATASET_TITLES), format_func=DATASET_TITLES.get, key="train_dataset"
)
size = c[1].selectbox("Image size (px)", SIZES[name], key=f"train_size_{name}")
subset = c[2].number_input(
    "Training images (0 = all)",
    min_value=0,
    value=0,
    step=100,
    key=f"train_subset_{name}",
    help="A few hundred images train fast and show overfitting.",
)
d = DEFAULTS[name]

if name == "upload":
    st.caption(
        "A .zip with one folder per class (cat/…, dog/…), at least 2 classes of 10 images. "
        "Nothing in it is run or unpickled; images are checked, resized and kept on this server."
    )
    zipped = st.file_uploader("Your zip", type=["zip"], key="upload_zip")
    if zipped is not None:
        try:
            report = state.upload_report(zipped.file_id)  # checked once per file, not per rerun
            if report is None:
                with st.spinner("Checking every image…"):
                    report = import_upload(zipped.getvalue(), owner=owner)
                state.set_upload(zipped.file_id, report)
        except DataError as e:
            state.set_upload(None, None)
            st.error(f"{zipped.name} was not accepted: {e}", icon=":material/error:")
        else:
            counts = ", ".join(
                f"{c} ({n})" for c, n in zip(report.classes, report.counts, strict=True)
            )
            st.success(f"{sum(report.counts):,} images in {len(report.classes)} classes: {counts}.")
            if report.skipped:
                with st.expander(f"{len(report.skipped)} files were left out"):
                    st.dataframe(
                        [{"file": f, "why": why} for f, why in report.skipped], hide_index=True
                    )

with st.form("train_settings"):
    r1 = st.columns(4)
    optimizer = r1[0].selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(d.optimizer))
    lr = r1[1].number_input(
        "Learning rate", value=d.lr, min_value=1e-6, max_value=10.0, format="%g", key=f"lr_{name}"
    )
    epochs = r1[2].number_input(
        "Epochs", value=d.epochs, min_value=1, max_value=1000, key=f"epochs_{name}"
    )
    batch = r1[3].number_input(
        "Batch size", value=d.batch_size, min_value=1, max_value=4096, key=f"batch_{name}"
    )
    r2 = st.columns(4)
    schedule = r2[0].selectbox(
        "Schedule", SCHEDULES, index=SCHEDULES.index(d.schedule), key=f"schedule_{name}"
    )
    warmup = r2[1].number_input(
        "Warm-up steps", value=d.warmup_steps, min_value=0, key=f"warmup_{name}"
    )
    decay = r2[2].number_input(
        "Weight decay",
        value=d.weight_decay,
        min_value=0.0,
        max_value=0.1,
        format="%g",
        key=f"wd_{name}",
    )
    seed = r2[3].number_input("Seed", value=0, min_value=0, key="seed")
    r3 = st.columns(4)
    momentum = r3[0].number_input(
        "Momentum (SGD)", value=d.momentum, min_value=0.0, max_value=0.999
    )
    augment = r3[1].toggle("Augment (crop + flip)", value=d.augment, key=f"augment_{name}")
    smoothing = r3[2].number_input("Label smoothing", value=0.0, min_value=0.0, max_value=0.5)
    start = st.form_submit_button("Start training", icon=":material/play_arrow:", type="primary")

if start:
    try:
        if name == "upload" and state.upload_digest() is None:
            raise DataError("upload a zip of class folders first")
        request = DataRequest(
            name=name,
            size=size,
            subset=subset or None,
            seed=int(seed),
            upload=state.upload_digest() if name == "upload" else None,
        )
        with st.spinner(f"Loading {DATASET_TITLES[name]}…"):
            data = services.dataset(request)
        net = dataclasses.replace(spec, input_shape=data.input_shape, num_classes=data.num_classes)
        try:
            net.validate()
        except SpecError as e:
            raise ValueError(  # not a SpecError: its "the network:" prefix would repeat
                f"{spec.name} does not fit {format_shape(data.input_shape)} images ({e}). "
                "Change it on the Build page, or pick a larger image size"
            ) from None
        config = TrainConfig(
            optimizer=optimizer,
            lr=float(lr),
            momentum=float(momentum),
            weight_decay=float(decay),
            schedule=schedule,
            warmup_steps=int(warmup),
            batch_size=int(batch),
            epochs=int(epochs),
            label_smoothing=float(smoothing),
            seed=int(seed),
            augment=augment,
        ).validate(len(data.y_train))
        job = services.job_manager().submit(
            owner,
            f"{spec.name} · {DATASET_TITLES[name].split(' (')[0]}",
            [Arm(spec.name, net)],
            data,
            config,
        )
        state.set_active_job(job)
    except (DataError, ValueError) as e:  # DataError, SpecError, ConfigError, JobError
        st.error(f"Could not start: {e}", icon=":material/error:")

job = state.active_job()
if job is None:  # after a reload: follow this browser's newest active run, if any
    active = [i for i in services.job_manager().list(owner) if i.active]
    if active:
        job = max(active, key=lambda i: i.created).id
        state.set_active_job(job)
if job is None:
    st.info("Start a run to see its loss, accuracy and gradients here, live.")
else:
    live.run_panel(job, key="train")
