"""ResNet Explorer: page setup and navigation, nothing else."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run app/streamlit_app.py` puts only app/ on it
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402
from PIL import Image  # noqa: E402

from app import lesson_chrome, state  # noqa: E402
from app.i18n import _  # noqa: E402

# The icon is served from this server: a `:material/...:` page icon is fetched from an
# outside font server on every visit, and fails offline.
st.set_page_config(
    page_title="ResNet Explorer", page_icon=Image.open(ROOT / "assets" / "icon.png"), layout="wide"
)
# The language (URL, else browser, else English), the theme (with its presenter section in
# presenter mode) and the sidebar's language and presenter controls: one place.
shared = state.shared_link()
lesson_chrome.setup(controls=not shared)  # a shared run's viewer gets no controls
if shared:  # ?run=…&view=…: that run read-only, and no other page
    st.navigation([st.Page("views/shared.py", title=_("Shared run"))], position="hidden").run()
    st.stop()
state.owner()  # the ?me= token on every page, the landing page too: a reload keeps the runs

pages = [
    st.Page("views/lessons.py", title=_("Lessons"), icon=":material/school:", default=True),
    st.Page("views/build.py", title=_("Build"), icon=":material/construction:"),
    st.Page("views/train.py", title=_("Train"), icon=":material/model_training:"),
    st.Page("views/compare.py", title=_("Compare"), icon=":material/compare_arrows:"),
    st.Page("views/explain.py", title=_("Explain"), icon=":material/visibility:"),
    st.Page("views/inside.py", title=_("Inside"), icon=":material/biotech:"),
    st.Page("views/runs.py", title=_("Runs"), icon=":material/history:"),
]
st.navigation(pages).run()
