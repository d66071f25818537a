"""AppTest of the navigation entry and the Build view, jumping to states via session_state."""

import dataclasses
import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app import state
from core.blocks import plain_forward_source, residual_forward_source
from core.presets import PRESETS
from core.spec import ConvSpec, NetSpec

TIMEOUT = 60
ENTRY = str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py")


@pytest.fixture
def app():
    """The navigation entry on its Build page (the landing page is the lesson list)."""
    at = AppTest.from_file(ENTRY, default_timeout=TIMEOUT)
    at.switch_page("views/build.py")
    return at


def test_the_landing_page_is_the_lesson_list():
    at = AppTest.from_file(ENTRY, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    assert at.title[0].value == "Lessons"


def _metrics(at):
    return {m.label: m.value for m in at.metric}


def shown(markdown: str) -> str:
    """What a reader sees of Markdown text: CommonMark drops the backslash of an escaped
    ASCII punctuation character."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def test_the_build_page_opens_on_the_default_preset(app):
    app.run()
    assert not app.exception
    assert app.title[0].value == "Build a network"
    assert _metrics(app)["Parameters"] == "19,218"  # ResNet-8 narrow, the classroom default
    assert _metrics(app)["Skips on"] == "3 of 3"
    rows = app.dataframe[0].value
    assert len(rows) == 5  # stem + 3 blocks + head
    assert list(rows["block"])[:2] == ["stem", "blocks.0"]


def test_switching_preset_and_skips(app):
    app.run()
    app.selectbox(key=state.PRESET_SELECT).set_value("resnet56").run()
    assert shown(app.subheader[0].value).startswith("ResNet-56")
    assert _metrics(app)["Skips on"] == "27 of 27"
    app.toggle[0].set_value(False).run()
    app.run()
    assert not app.exception
    assert shown(app.subheader[0].value).startswith("Plain-56")
    assert _metrics(app)["Skips on"] == "0 of 27"
    assert _metrics(app)["Parameters"] == "853,018"  # the plain twin has the same count


def test_a_spec_in_session_state_is_shown(app):
    app.session_state[state.SPEC] = PRESETS["dense_residual"].spec()
    app.session_state[state.PRESET] = "dense_residual"
    app.run()
    rows = app.dataframe[0].value
    assert list(rows["kind"]) == ["flatten", "fully connected residual", "head (pool + classifier)"]
    assert list(rows["skip"])[1] == "identity"


def test_selects_and_table_show_human_labels_and_the_json_keeps_identifiers(app):
    app.session_state[state.SELECTED] = 2  # blocks.2 of ResNet-8 narrow: zero-pad (A)
    app.run()
    assert not app.exception
    init = app.selectbox(key=state.field_key(0, -1, "init"))
    assert list(init.options) == [
        "Kaiming (He) normal",
        "Xavier (Glorot) uniform",
        "PyTorch default",
        "small normal (std 0.01)",
    ]
    assert init.value == "kaiming"  # the identifier underneath
    assert "small normal (std 0.01): too small on purpose" in init.help
    kinds = app.selectbox(key=state.NEW_KIND)
    assert "basic residual block" in kinds.options and "basic" not in kinds.options
    shortcut = app.selectbox(key=state.field_key(0, 2, "shortcut"))
    assert "zero-padding (option A)" in shortcut.options and "zero_pad" not in shortcut.options
    assert shortcut.value == "zero_pad"
    rows = app.dataframe[0].value
    assert rows["kind"].iloc[0] == "stem (first convolution)"
    spec_json = app.session_state[state.SPEC].to_json()
    assert '"zero_pad"' in spec_json and '"kaiming"' in spec_json


def test_loading_a_bad_spec_shows_a_readable_error_and_keeps_the_page(app):
    app.run()
    bad = PRESETS["resnet20"].spec().to_dict()
    bad["blocks"][3]["shortcut"] = "identity"  # 16x32x32 -> 32x16x16 with no shortcut
    app.file_uploader(key=state.SPEC_UPLOAD).upload(
        "broken.json", json.dumps(bad).encode(), "application/json"
    ).run()
    assert not app.exception
    assert shown(app.error[0].value) == (
        "Could not load broken.json: block 3: the skip goes from 16x32x32 to 32x16x16; choose "
        "the 'projection' or 'zero-pad' shortcut, or turn the skip off"
    )
    assert _metrics(app)["Parameters"] == "19,218"  # the page still shows the old net


def test_loading_a_good_spec_replaces_the_network(app):
    app.run()
    good = PRESETS["resnet8_narrow"].spec()
    app.file_uploader(key=state.SPEC_UPLOAD).upload(
        "mine.json", good.to_json().encode(), "application/json"
    ).run()
    assert not app.exception
    assert shown(app.subheader[0].value).startswith("ResNet-8 narrow")
    assert _metrics(app)["Parameters"] == f"{good.validate().params:,}"


def _upload(app, name: str, data: bytes):
    app.file_uploader(key=state.SPEC_UPLOAD).upload(name, data, "application/json").run()
    assert not app.exception
    assert _metrics(app)["Parameters"] == "19,218"  # the page still shows the old net
    return shown(app.error[0].value)


def _doc(**over) -> dict:
    return {**PRESETS["resnet8_narrow"].spec().to_dict(), **over}


def test_loading_a_deeply_nested_file_shows_the_readable_message(app):
    app.run()
    deep = "[" * 100_000 + "]" * 100_000  # raised RecursionError in the page before
    text = json.dumps(_doc()).replace('"blocks": [', '"blocks": [{"p": ' + deep + "}, ", 1)
    assert _upload(app, "deep.json", text.encode()) == (
        "Could not load deep.json: the file: brackets nest 100,003 deep; the limit is 32; "
        "is it the right file?"
    )


def test_loading_an_oversized_file_shows_the_readable_message(app):
    app.run()
    data = json.dumps(_doc(blocks=[{"kind": "flatten"}] * 1_200_000)).encode()  # 25 MB
    assert _upload(app, "huge.json", data) == (
        f"Could not load huge.json: the file: it is {len(data):,} bytes long; the limit is "
        "1,000,000; is it the right file?"
    )


def test_loading_a_number_with_5000_digits_shows_the_readable_message(app):
    app.run()
    text = json.dumps(_doc()).replace('"num_classes": 10', '"num_classes": ' + "9" * 5000)
    assert _upload(app, "digits.json", text.encode()) == (
        "Could not load digits.json: the file: a number has 5,000 digits; the limit is 30; "
        "is it the right file?"
    )


def test_loading_a_spec_the_server_cannot_run_is_refused(app):
    app.run()
    wide = NetSpec(input_shape=(3, 512, 512), num_classes=10, blocks=(ConvSpec(out_channels=2048),))
    message = _upload(app, "wide.json", wide.to_json().encode())
    assert message.startswith(
        "Could not load wide.json: the network: training on one image keeps 6.0 GiB of "
        "activations, 6.0x the limit of 1.0 GiB; use narrower blocks"
    )


def test_a_refused_spec_is_not_drawn_or_tabled(app):
    app.session_state[state.SPEC] = NetSpec(
        input_shape=(3, 512, 512),
        num_classes=10,
        blocks=tuple(ConvSpec(out_channels=64) for _ in range(500)),
    )
    app.run()
    assert not app.exception
    assert shown(app.error[0].value).startswith(
        "This network cannot be built yet. the network: it needs 4.8e12 mult-adds per image"
    )
    assert not app.metric and not app.dataframe
    assert not app.get("plotly_chart")


def test_a_network_name_is_shown_as_plain_text(app):
    name = "**Bold** [link](https://example.com) <b>x</b> $x^2$ :red[red] # 1. _i_"
    spec = dataclasses.replace(PRESETS["resnet8_narrow"].spec(), name=name)
    app.session_state[state.SPEC] = spec
    app.run()
    heading = app.subheader[0].value
    assert shown(heading) == f"{name}: input 3x32x32"
    markup = heading.removesuffix(": input 3x32x32")
    # every punctuation character of the name is escaped, so none of it is Markdown
    assert re.fullmatch(r"(?:\\[!-/:-@\[-`{-~]|[^!-/:-@\[-`{-~\\])*", markup)
    app.file_uploader(key=state.SPEC_UPLOAD).upload(
        "[x](y).json", spec.to_json().encode(), "application/json"
    ).run()
    assert shown(app.success[0].value) == f"Loaded [x](y).json: {name}."
    assert "[x](y)" not in app.success[0].value


def test_show_the_code_quotes_the_real_residual_block_and_its_plain_version(app):
    app.run()
    plain, residual = (c.value for c in app.code)
    assert residual == residual_forward_source()
    assert plain == plain_forward_source()
    assert residual.splitlines()[1:3] == [
        "    out = self.conv1(x)  # (B, C_in, H, W) -> (B, C_out, H/s, W/s)",
        "    out = self.bn1(out)",
    ]
