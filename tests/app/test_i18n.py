"""Translations: every string marked with _() or N_() in app/ and core/ has a current
German translation, the compiled catalogue is the one its .po gives, and the standard
library's gettext (the oracle) reads our compiler's .mo back to the same pairs."""

import ast
import gettext
import io
import re
import threading

import pytest

from app import i18n
from tools import po

ROOT = po.ROOT
DE = ROOT / "app" / "locales" / "de" / "LC_MESSAGES" / "messages.po"


def _entries():
    return {e.msgid: e for e in po.parse_po(DE.read_text(encoding="utf-8")) if e.msgid}


def test_every_marked_string_has_a_german_translation():
    marked = po.extract([ROOT / "app", ROOT / "core"])
    assert "Show the answer" in marked  # the extractor sees N_() in app/i18n.py
    entries = _entries()
    missing = [f"{m!r} ({where[0]})" for m, where in marked.items() if m not in entries]
    assert not missing, "add to messages.po: " + "; ".join(missing)
    untranslated = [m for m in marked if not entries[m].msgstr or entries[m].fuzzy]
    assert not untranslated, f"translate (or un-fuzzy) in messages.po: {untranslated}"


def test_no_stale_entries_and_the_mo_is_current():
    marked = po.extract([ROOT / "app", ROOT / "core"])
    stale = [m for m in _entries() if m not in marked]
    assert not stale, f"no longer in the code, remove from messages.po: {stale}"
    mo = DE.with_suffix(".mo")
    assert mo.read_bytes() == po.compile_mo(po.parse_po(DE.read_text(encoding="utf-8"))), (
        "messages.mo is stale: run tools/po.py"
    )


def test_placeholders_survive_translation():
    for msgid, entry in _entries().items():
        fields = sorted(re.findall(r"\{[^}]*\}", msgid))
        assert sorted(re.findall(r"\{[^}]*\}", entry.msgstr)) == fields, msgid


def test_gettext_reads_our_mo_back():
    entries = [
        po.Entry("Start", "Starten"),
        po.Entry('say "hi"\n', "sag „hi“\n"),
        po.Entry("Zürich", "Zürich ✓"),
        po.Entry("fuzzy one", "unsicher", fuzzy=True),
        po.Entry("empty", ""),
    ]
    t = gettext.GNUTranslations(io.BytesIO(po.compile_mo(entries)))
    assert t.gettext("Start") == "Starten"
    assert t.gettext('say "hi"\n') == "sag „hi“\n"
    assert t.gettext("Zürich") == "Zürich ✓"
    assert t.gettext("fuzzy one") == "fuzzy one"  # fuzzy entries are not used
    assert t.gettext("empty") == "empty"


def test_the_po_reader_reads_escapes_continuations_and_refuses_plurals():
    text = '# c\nmsgid ""\n"a\\"b"\n"c\\n"\nmsgstr "x"\n"y"\n\n#, fuzzy\nmsgid "f"\nmsgstr "g"\n'
    assert po.parse_po(text) == [po.Entry('a"bc\n', "xy", False, 2), po.Entry("f", "g", True, 9)]
    with pytest.raises(po.PoError, match="line 2: plurals"):
        po.parse_po('msgid "a"\nmsgid_plural "as"\n')
    with pytest.raises(po.PoError, match="line 1: unknown escape"):
        po.parse_po('msgid "a\\q"\nmsgstr ""\n')


@pytest.mark.parametrize(
    ("query", "locale", "expected"),
    [
        ("de", "en-US", "de"),
        ("en", "de-DE", "en"),
        (None, "de-AT", "de"),
        (None, "de_CH", "de"),
        ("fr", "de-DE", "de"),  # a language we lack in the URL: the browser's
        ("fr", "fr-FR", "en"),
        (None, None, "en"),
        ("DE", None, "de"),
        ("", "", "en"),
    ],
)
def test_the_language_comes_from_the_url_then_the_browser_then_english(query, locale, expected):
    assert i18n.pick_language(query, locale) == expected


def test_each_script_thread_keeps_its_own_language():
    seen = {}

    def page(lang):
        i18n.use_language(lang)
        barrier.wait()  # both set their language before either translates
        seen[lang] = i18n._("Show the answer")

    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=page, args=(lang,)) for lang in ("de", "en")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"de": "Antwort zeigen", "en": "Show the answer"}


# --- no unmarked words on the pages this catalogue covers --------------------------------

OWNED_VIEWS = [
    "app/streamlit_app.py",
    "app/views/lessons.py",
    "app/views/build.py",
    "app/views/explain.py",
    *(f"app/{p.name}" for p in sorted((ROOT / "app").glob("lesson_*.py"))),
    *(f"app/{p.name}" for p in sorted((ROOT / "app").glob("explain_*.py"))),
]
UI_CALLS = {  # streamlit calls whose first argument (or these keywords) a reader sees
    "title", "header", "subheader", "caption", "markdown", "info", "warning", "error",
    "success", "button", "toggle", "selectbox", "radio", "number_input", "multiselect",
    "metric", "expander", "tabs", "download_button", "file_uploader", "text_input", "slider",
    "checkbox", "progress", "pills", "segmented_control", "select_slider", "text_area",
    "write", "toast", "popover", "form_submit_button", "spinner",
}  # fmt: skip
UI_KEYWORDS = {"help", "text", "placeholder", "label", "title"}
WORDS = re.compile(r"[A-Za-z]{2,}")


def unmarked_literals(source: str, name: str) -> list[str]:
    """`st.x("words")`-style calls whose text a reader sees but `_()` never translates:
    a bare string (or f-string) with words, as the first argument, in a list there (tabs),
    or as a help/text/placeholder/label/title keyword."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in (*UI_CALLS, "Page"):
            continue
        args = list(node.args[:1]) if node.func.attr != "Page" else []  # a page's path
        if args and isinstance(args[0], ast.List):
            args = list(args[0].elts)
        args += [k.value for k in node.keywords if k.arg in UI_KEYWORDS]
        for arg in args:
            parts = arg.values if isinstance(arg, ast.JoinedStr) else [arg]
            text = "".join(
                p.value for p in parts if isinstance(p, ast.Constant) and isinstance(p.value, str)
            )
            if isinstance(arg, ast.Constant | ast.JoinedStr) and WORDS.search(text):
                found.append(f"{name}:{node.lineno}: {node.func.attr}({text[:40]!r})")
    return found


def test_the_unmarked_literal_finder_finds_them():
    source = (
        'st.title("Build")\ncols[0].button(f"Run {n}")\nst.tabs(["Maps", _("ok")])\n'
        'st.caption(_("fine"))\nst.markdown(f"**{x}**")\nst.slider(_("x"), help="Why")\n'
    )
    found = sorted(unmarked_literals(source, "x.py"))
    assert found == [
        "x.py:1: title('Build')",
        "x.py:2: button('Run ')",
        "x.py:3: tabs('Maps')",
        "x.py:6: slider('Why')",
    ]


@pytest.mark.parametrize("path", OWNED_VIEWS)
def test_the_pages_mark_every_string_a_reader_sees(path):
    found = unmarked_literals((ROOT / path).read_text(encoding="utf-8"), path)
    assert not found, "wrap in _() and translate in messages.po: " + "; ".join(found)


def test_a_run_that_set_no_language_asks_the_resolver():
    """A fragment's rerun skips the entry script: `_()` then asks the registered resolver
    (the URL's language), and English without one."""
    seen = {}

    def fragment(name):
        seen[name] = i18n._("Show the answer")

    before = i18n._resolver
    try:
        for name, resolver in (("de", lambda: "de"), ("none", None), ("odd", lambda: "xx")):
            i18n.set_resolver(resolver)
            thread = threading.Thread(target=fragment, args=(name,))  # a fresh context
            thread.start()
            thread.join()
    finally:
        i18n.set_resolver(before)
    assert seen == {"de": "Antwort zeigen", "none": "Show the answer", "odd": "Show the answer"}
