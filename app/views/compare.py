"""Compare: race a plain net against its residual twin, reproduce He et al.'s
degradation experiment, overlay finished runs, and see gradient flow at init."""

import dataclasses

import streamlit as st

from app import figures, live, services, state
from core.analysis import depth_sweep
from core.config import TrainConfig
from core.data import DataError, DataRequest
from core.jobs import ACTIVE, Arm
from core.presets import cifar_resnet

st.title("Compare plain and residual")
owner = state.owner()
mgr = services.job_manager()

RACES = {  # label -> (n of 6n+2, widths)
    "8 layers, narrow": (1, (8, 16, 32)),
    "14 layers, narrow": (2, (8, 16, 32)),
    "20 layers, narrow": (3, (8, 16, 32)),
    "20 layers (CIFAR)": (3, (16, 32, 64)),
    "56 layers, narrow": (9, (8, 16, 32)),
    "56 layers (CIFAR)": (9, (16, 32, 64)),
}


DATA = {"digits": "Digits (built in)", "shapes": "Shapes (built in)"}


def _request(name: str, seed: int) -> DataRequest:
    return DataRequest(name=name, size=16, seed=seed, n=6000 if name == "shapes" else None)


def _submit(name: str, arms: list[Arm], steps: int, data_name: str, seed: int = 0) -> None:
    try:
        data = services.dataset(_request(data_name, seed))
        arms = [
            Arm(
                a.name,
                dataclasses.replace(
                    a.spec, input_shape=data.input_shape, num_classes=data.num_classes
                ),
            )
            for a in arms
        ]
        cfg = TrainConfig(
            steps=steps,
            batch_size=128,
            lr=0.1,
            schedule="cosine",
            warmup_steps=min(20, steps // 10),
            seed=seed,
            eval_every=max(steps // 5, 1),
        )
        st.session_state["compare_job"] = mgr.submit(owner, name, arms, data, cfg)
    except (DataError, ValueError) as e:
        st.error(f"Could not start: {e}", icon=":material/error:")


def _shaped(n: int, widths, residual: bool):
    return cifar_resnet(
        n, residual=residual, widths=widths, input_shape=(3, 16, 16), num_classes=10
    )


race, degrade, overlay, init = st.tabs(
    [
        "Race: plain vs residual",
        "Degradation (He et al. Fig. 1)",
        "Overlay runs",
        "Gradient flow at init",
    ]
)

with race:
    st.caption(
        "Both nets start from the same weights and see the same batches in the same order; "
        "the only difference is the skip connections. Images at 16x16."
    )
    cols = st.columns([2, 2, 1, 1])
    depth = cols[0].selectbox("Depth", list(RACES), index=2, key="race_depth")
    race_data = cols[1].selectbox("Data", list(DATA), format_func=DATA.get, key="race_data")
    steps = cols[2].number_input(
        "Steps", value=200, min_value=10, max_value=20_000, step=50, key="race_steps"
    )
    if cols[3].button("Race them", icon=":material/sports_score:", type="primary"):
        n, widths = RACES[depth]
        plain, res = _shaped(n, widths, False), _shaped(n, widths, True)
        _submit(
            f"Race: {depth}", [Arm(plain.name, plain), Arm(res.name, res)], int(steps), race_data
        )

with degrade:
    st.markdown(
        "He et al. (2015) found that a **56-layer plain net trains worse than a 20-layer "
        "one** — not overfitting, the training loss itself is higher — while the residual "
        "56-layer net does not suffer. This trains all four (narrow, on the built-in digits "
        "at 16x16, 300 steps each, interleaved) so you can watch it happen: about 3 minutes "
        "on a laptop CPU, seconds on a GPU. Look at the training loss: plain-56 stays "
        "above plain-20; ResNet-56 keeps up with ResNet-20."
    )
    if st.button("Run the experiment", icon=":material/science:", type="primary"):
        arms = [
            Arm(s.name, s)
            for s in (
                _shaped(3, (8, 16, 32), False),
                _shaped(9, (8, 16, 32), False),
                _shaped(3, (8, 16, 32), True),
                _shaped(9, (8, 16, 32), True),
            )
        ]
        _submit("Degradation: 20 vs 56 layers", arms, 300, "digits")

job = st.session_state.get("compare_job")
if job is not None:
    live.run_panel(job, key="compare")

with overlay:
    runs = [i for i in mgr.list(owner) if i.status not in ACTIVE and i.step > 0]
    if not runs:
        st.info("Finished runs of this session appear here, to overlay on the same axes.")
    else:
        options = [(r.id, arm) for r in runs for arm in r.arms]
        picked = st.multiselect(
            "Runs to overlay",
            options,
            default=options[:2],
            format_func=lambda o: f"{o[0]} · {o[1]}",
            key="overlay_pick",
        )
        if picked:
            snaps = {f"{rid} · {arm}": mgr.logs(rid, owner)[arm].snapshot() for rid, arm in picked}
            live.charts(snaps, key="overlay")

with init:
    st.caption(
        "One batch forward and backward through a fresh net, no training: how large is each "
        "layer's gradient? Plain nets lose it towards the input (or, with BatchNorm, blow it "
        "up); residual nets keep it level."
    )
    cols = st.columns(3)
    depths = cols[0].multiselect(
        "Depths (6n+2)", [8, 14, 20, 32, 56, 110], default=[20, 56, 110], key="init_depths"
    )
    bn = cols[1].toggle("BatchNorm", value=False, key="init_bn")
    act = cols[2].selectbox("Activation", ["relu", "sigmoid", "tanh", "gelu"], key="init_act")

    @st.cache_data(show_spinner="Measuring gradients…", max_entries=32)
    def _flows(depths: tuple[int, ...], bn: bool, act: str):
        return depth_sweep(depths, batch_norm=(bn,), activations=(act,))

    if depths:
        points = _flows(tuple(sorted(depths)), bn, act)
        a, b = st.columns(2)
        a.plotly_chart(
            figures.grad_flow_figure([p.flow for p in points]), key="init_flow", width="stretch"
        )
        b.plotly_chart(figures.sweep_figure(points), key="init_sweep", width="stretch")
