"""Build: start from a preset, edit blocks, switch skips, see the diagram and the costs."""

import dataclasses

import streamlit as st

from app import choices, diagram, editing, state
from app.i18n import _, number, tr
from app.markup import plain
from core.blocks import plain_forward_source, residual_forward_source
from core.errors import ExplainedError
from core.model import summary
from core.presets import PRESETS
from core.spec import (
    ACTIVATIONS,
    BLOCK_KINDS,
    INITS,
    Defaults,
    NetSpec,
)


def _commit(spec: NetSpec, *, structural: bool = True, preset: str | None = None) -> None:
    state.set_spec(spec, preset=preset)
    if structural:
        state.bump_spec_version()
    st.rerun()


st.title(_("Build a network"))
st.caption(
    _(
        "Start from a preset, then change it block by block. The same network with its skips "
        "off is its plain twin: the same layers and weights, no shortcuts."
    )
)

keys = list(PRESETS)
top = st.columns([3, 2, 2])
key = top[0].selectbox(
    _("Preset"),
    keys,
    index=keys.index(state.preset_key()),
    format_func=lambda k: PRESETS[k].title,
    key=state.PRESET_SELECT,
)
if key != state.preset_key():
    _commit(PRESETS[key].spec(), preset=key)
spec = state.current_spec()
residual_blocks = [b for b in spec.blocks if b.residual]
all_on = bool(residual_blocks) and all(b.skip for b in residual_blocks)
residual = top[1].toggle(
    _("Skip connections on"),
    value=all_on,
    disabled=not residual_blocks,
    key=f"skips_all_{state.spec_version()}",
    help=_("Off gives the plain twin. Single skips can be switched in the block editor."),
)
if residual_blocks and residual != all_on:
    _commit(spec.with_skips(residual))
top[2].caption(PRESETS[key].description)

# --- validate once; everything below reads the plan or the error ------------------------
try:
    info = summary(spec)
    error = None
except ExplainedError as e:  # a SpecError, or any other readable refusal
    info, error = None, e
if error is not None:
    st.error(
        _("This network cannot be built yet. {error}").format(error=tr(error)),
        icon=":material/error:",
    )

if info is not None:
    totals = info.totals
    m = st.columns(4)
    m[0].metric(_("Parameters"), number(totals["params"]))
    m[1].metric(_("Multiply-adds per image"), number(totals["mult-adds"] / 1e6, 1) + " M")
    m[2].metric(_("Blocks"), totals["blocks"])
    m[3].metric(
        _("Skips on"),
        _("{on} of {total}").format(on=totals["skips on"], total=totals["residual blocks"]),
    )
    st.subheader(
        _("{name}: input {shape}").format(
            name=plain(spec.name), shape="x".join(map(str, spec.input_shape))
        )
    )
    st.plotly_chart(diagram.network_diagram(info.plan), key="diagram", width="stretch")

# --- the block editor -----------------------------------------------------------------------
st.subheader(_("Blocks"))
left, right = st.columns([2, 3])
shapes = [b.out_shape for b in info.plan.blocks] if info else [None] * len(spec.blocks)
bad = getattr(error, "block", None)
with left:
    if spec.blocks:
        chosen = min(state.selected_block(), len(spec.blocks) - 1)
        chosen = st.radio(
            _("Block"),
            range(len(spec.blocks)),
            index=chosen,
            format_func=lambda i: editing.block_label(i, spec.blocks[i], shapes[i], i == bad),
            key=f"block_pick_{state.spec_version()}",
            label_visibility="collapsed",
        )
        state.select_block(chosen)
    else:
        chosen = -1
        st.info(_("No blocks yet: add one."))
    add_cols = st.columns([3, 2])
    kind = add_cols[0].selectbox(
        _("New block"),
        list(BLOCK_KINDS),
        format_func=choices.label,
        help=choices.helps(BLOCK_KINDS),
        key=state.NEW_KIND,
    )
    if add_cols[1].button(_("Add after"), icon=":material/add:", width="stretch"):
        channels = shapes[chosen][0] if chosen >= 0 and shapes[chosen] else 16
        state.select_block(chosen + 1)
        _commit(editing.insert_block(spec, chosen + 1, editing.new_block(kind, channels)))
    if chosen >= 0:
        mv = st.columns(3)
        if mv[0].button(_("Up"), icon=":material/arrow_upward:", width="stretch"):
            state.select_block(max(chosen - 1, 0))
            _commit(editing.move_block(spec, chosen, -1))
        if mv[1].button(_("Down"), icon=":material/arrow_downward:", width="stretch"):
            state.select_block(min(chosen + 1, len(spec.blocks) - 1))
            _commit(editing.move_block(spec, chosen, 1))
        if mv[2].button(_("Delete"), icon=":material/delete:", width="stretch"):
            state.select_block(max(chosen - 1, 0))
            _commit(editing.remove_block(spec, chosen))

with right:
    if chosen >= 0:
        block = spec.blocks[chosen]
        kind_label = choices.label(block.kind)
        st.markdown(
            _("**Block {chosen}: {kind}** — {doc}").format(
                chosen=chosen, kind=kind_label, doc=type(block).__doc__.splitlines()[0]
            )
        )
        if bad == chosen:
            advice = tr(error.problem) + (f"; {tr(error.fix)}" if error.fix else "")
            st.error(advice, icon=":material/error:")  # SpecError.advice, translated
        values = {}
        v = state.spec_version()
        for name, widget, value in editing.field_kinds(block):
            k = state.field_key(v, chosen, name)
            label = choices.field_label(name)
            if widget == "choice":
                options = list(editing.CHOICES[name])
                if value is None or name in ("activation", "init"):
                    options = [editing.INHERIT, *options]
                shown = editing.INHERIT if value is None else value
                picked = st.selectbox(
                    label,
                    options,
                    index=options.index(shown),
                    format_func=choices.label,
                    help=choices.helps(options),
                    key=k,
                )
                values[name] = None if picked == editing.INHERIT else picked
            elif widget == "flag":
                values[name] = st.toggle(label, value=value, key=k)
            elif widget == "flag_or_inherit":
                options = [editing.INHERIT, "on", "off"]
                shown = editing.INHERIT if value is None else ("on" if value else "off")
                picked = st.selectbox(
                    label, options, index=options.index(shown), format_func=choices.label, key=k
                )
                values[name] = None if picked == editing.INHERIT else picked == "on"
            elif widget == "int":
                values[name] = int(st.number_input(label, value=value, step=1, key=k))
            elif widget == "int_or_auto":
                got = st.number_input(label, value=value, step=1, key=k, placeholder=_("auto"))
                values[name] = None if got is None else int(got)
            else:
                values[name] = float(st.number_input(label, value=float(value), step=0.05, key=k))
        edited = dataclasses.replace(block, **values)
        if edited != block:
            _commit(editing.replace_block(spec, chosen, edited), structural=False)

with st.expander(_("Network-wide settings: BatchNorm, activation, initialisation")):
    d, v = spec.defaults, state.spec_version()
    c = st.columns(4)
    bn = c[0].toggle(_("BatchNorm"), value=d.batch_norm, key=state.field_key(v, -1, "bn"))
    act = c[1].selectbox(
        _("Activation"),
        ACTIVATIONS,
        index=ACTIVATIONS.index(d.activation),
        format_func=choices.label,
        help=choices.helps(ACTIVATIONS),
        key=state.field_key(v, -1, "act"),
    )
    init = c[2].selectbox(
        _("Initialisation"),
        INITS,
        index=INITS.index(d.init),
        format_func=choices.label,
        help=choices.helps(INITS),
        key=state.field_key(v, -1, "init"),
    )
    zero = c[3].toggle(
        _("Zero-init last BN of each branch"),
        value=d.zero_init_last_bn,
        key=state.field_key(v, -1, "zero"),
    )
    new = Defaults(batch_norm=bn, activation=act, init=init, zero_init_last_bn=zero)
    if new != d:
        _commit(dataclasses.replace(spec, defaults=new), structural=False)
    st.caption(
        _(
            "Blocks set to 'network default' follow these. Try sigmoid with small normal init on "
            "a deep plain net, then look at its gradients on the Compare page."
        )
    )

if info is not None:
    st.subheader(_("Shapes, parameters and cost"))
    numbers = {"params": "localized", "mult-adds": "localized", "activation MB": "%.2f"}
    headers = {  # human headers, each with its one-line help (the JSON keeps the names)
        column: (
            st.column_config.NumberColumn(choices.label(column), help=help_, format=numbers[column])
            if column in numbers
            else st.column_config.Column(choices.label(column), help=help_)
        )
        for column, (_, help_) in choices.TERMS.items()
        if column in info.rows[0]
    }
    st.dataframe(
        [row | {"kind": choices.label(row["kind"])} for row in info.rows],
        hide_index=True,
        width="stretch",
        column_config=headers,
    )

with st.expander(_("Show the code: a plain block and a residual block")):
    a, b = st.columns(2)
    a.markdown(_("**Plain block**"))
    a.code(plain_forward_source(), language="python")
    b.markdown(_("**Residual block**"))
    b.code(residual_forward_source(), language="python")
    st.caption(
        _(
            "The one line that differs adds the block's input (through the shortcut: identity, "
            "zero-padding, or a 1x1 projection when the shape changes) to the output of the two "
            "convolutions; the `if` above it is the live switch. With the skip off, the residual "
            "block computes exactly the plain one."
        )
    )

with st.expander(_("Save or load the network as JSON")):
    st.download_button(
        _("Download spec (JSON)"),
        spec.to_json(),
        file_name=f"{spec.name.replace(' ', '_')}.json",
        mime="application/json",
    )
    upload = st.file_uploader(_("Load a spec (JSON)"), type=["json"], key=state.SPEC_UPLOAD)
    if upload is not None:
        try:  # size, nesting and block count are checked before any block is parsed
            loaded = NetSpec.from_json(upload.getvalue())
            loaded.validate()
        except ExplainedError as e:
            st.error(
                _("Could not load {file}: {error}").format(file=plain(upload.name), error=tr(e)),
                icon=":material/error:",
            )
        else:
            if loaded != spec:
                _commit(loaded)
            st.success(
                _("Loaded {file}: {name}.").format(file=plain(upload.name), name=plain(loaded.name))
            )
