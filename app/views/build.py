"""Build: pick a preset or load a spec, switch skips, read the per-block summary."""

import streamlit as st

from app import state
from core.model import summary
from core.presets import PRESETS
from core.spec import NetSpec, SpecError

MAX_SPEC_BYTES = 1_000_000

st.title("Build a network")

keys = list(PRESETS)
left, right = st.columns([3, 2])
with left:
    key = st.selectbox(
        "Preset",
        keys,
        index=keys.index(state.preset_key()),
        format_func=lambda k: PRESETS[k].title,
        key="preset_select",
    )
if key != state.preset_key():
    state.set_spec(PRESETS[key].spec(), preset=key)
spec = state.current_spec()
with right:
    has_skips = any(b.residual for b in spec.blocks)
    residual = st.toggle(
        "Skip connections on (residual)",
        value=any(getattr(b, "skip", False) for b in spec.blocks),
        disabled=not has_skips,
        help="Off gives the plain twin: the same layers and weights, no shortcuts.",
    )
if has_skips and residual != any(getattr(b, "skip", False) for b in spec.blocks):
    spec = spec.with_skips(residual)
    state.set_spec(spec)

st.caption(PRESETS[key].description)

try:
    info = summary(spec)
except SpecError as e:
    st.error(f"This network cannot be built. {e}")
    st.stop()

totals = info.totals
c1, c2, c3, c4 = st.columns(4)
c1.metric("Parameters", f"{totals['params']:,}")
c2.metric("Mult-adds per image", f"{totals['mult-adds'] / 1e6:,.1f} M")
c3.metric("Blocks", totals["blocks"])
c4.metric("Skips on", f"{totals['skips on']} of {totals['residual blocks']}")

st.subheader(f"{spec.name}: input {'x'.join(map(str, spec.input_shape))}")
st.dataframe(
    info.rows,
    hide_index=True,
    width="stretch",
    column_config={
        "params": st.column_config.NumberColumn("params", format="localized"),
        "mult-adds": st.column_config.NumberColumn("mult-adds", format="localized"),
        "activation MB": st.column_config.NumberColumn("activation MB (batch 128)", format="%.2f"),
    },
)

with st.expander("Save or load the network as JSON"):
    st.download_button(
        "Download spec (JSON)",
        spec.to_json(),
        file_name=f"{spec.name.replace(' ', '_')}.json",
        mime="application/json",
    )
    upload = st.file_uploader("Load a spec (JSON)", type=["json"], key="spec_upload")
    if upload is not None:
        data = upload.getvalue()
        try:
            if len(data) > MAX_SPEC_BYTES:
                raise SpecError(
                    f"the file is {len(data):,} bytes; a spec is at most "
                    f"{MAX_SPEC_BYTES:,} bytes. Is it the right file?"
                )
            loaded = NetSpec.from_json(data.decode("utf-8", errors="replace"))
            loaded.validate()
        except SpecError as e:
            st.error(f"Could not load {upload.name}: {e}")
        else:
            if loaded != spec:
                state.set_spec(loaded)
                st.rerun()
            st.success(f"Loaded {upload.name}: {loaded.name}.")
