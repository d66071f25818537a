"""AppTest of the navigation entry and the Build view, jumping to states via session_state."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.presets import PRESETS

TIMEOUT = 60
ENTRY = str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py")


@pytest.fixture
def app():
    return AppTest.from_file(ENTRY, default_timeout=TIMEOUT)


def _metrics(at):
    return {m.label: m.value for m in at.metric}


def test_navigation_entry_opens_the_build_page_on_the_default_preset(app):
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
    app.selectbox(key="preset_select").set_value("resnet56").run()
    assert app.subheader[0].value.startswith("ResNet-56")
    assert _metrics(app)["Skips on"] == "27 of 27"
    app.toggle[0].set_value(False).run()
    app.run()
    assert not app.exception
    assert app.subheader[0].value.startswith("Plain-56")
    assert _metrics(app)["Skips on"] == "0 of 27"
    assert _metrics(app)["Parameters"] == "853,018"  # the plain twin has the same count


def test_a_spec_in_session_state_is_shown(app):
    app.session_state["spec"] = PRESETS["dense_residual"].spec()
    app.session_state["preset_key"] = "dense_residual"
    app.run()
    rows = app.dataframe[0].value
    assert list(rows["kind"]) == ["flatten", "dense_residual", "head"]
    assert list(rows["skip"])[1] == "identity"


def test_loading_a_bad_spec_shows_a_readable_error_and_keeps_the_page(app):
    app.run()
    bad = PRESETS["resnet20"].spec().to_dict()
    bad["blocks"][3]["shortcut"] = "identity"  # 16x32x32 -> 32x16x16 with no shortcut
    app.file_uploader(key="spec_upload").upload(
        "broken.json", json.dumps(bad).encode(), "application/json"
    ).run()
    assert not app.exception
    message = app.error[0].value
    assert "Could not load broken.json: block 3: the skip goes from 16x32x32 to 32x16x16" in (
        message
    )
    assert _metrics(app)["Parameters"] == "19,218"  # the page still shows the old net


def test_loading_a_good_spec_replaces_the_network(app):
    app.run()
    good = PRESETS["resnet8_narrow"].spec()
    app.file_uploader(key="spec_upload").upload(
        "mine.json", good.to_json().encode(), "application/json"
    ).run()
    assert not app.exception
    assert app.subheader[0].value.startswith("ResNet-8 narrow")
    assert _metrics(app)["Parameters"] == f"{good.validate().params:,}"
