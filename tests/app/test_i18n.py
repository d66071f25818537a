"""Translations: every string marked with _() or N_() in app/ and core/ has a current
German translation, the compiled catalogue is the one its .po gives, and the standard
library's gettext (the oracle) reads our compiler's .mo back to the same pairs."""

import ast
import contextlib
import gettext
import io
import re
import threading

import pytest

from app import choices, figures, i18n
from core import checks, experiments
from core.config import TrainConfig
from core.errors import ExplainedError
from core.jobs_api import check_room
from core.spec import BasicSpec, ConvSpec, NetSpec
from core.words import say
from tests.app.conftest import page
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

# Every module of the app and every page: modules without widgets (figures, tables,
# plumbing) pass trivially, and stay checked should they ever draw one.
OWNED_VIEWS = [
    *(f"app/{p.name}" for p in sorted((ROOT / "app").glob("*.py"))),
    *(f"app/views/{p.name}" for p in sorted((ROOT / "app" / "views").glob("*.py"))),
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


# --- numbers and core's messages in the reader's language --------------------------------


@contextlib.contextmanager
def reading(lang: str):
    """`_()` in `lang` inside the block, and the test thread's language as it was after."""
    token = i18n._language.set(lang)
    try:
        yield
    finally:
        i18n._language.reset(token)


@pytest.mark.parametrize(
    ("lang", "count", "half", "share", "big"),
    [("en", "19,218", "0.5", "12.3%", "1,234,567.89"),
     ("de", "19.218", "0,5", "12,3\u00a0%", "1.234.567,89")],
)  # fmt: skip
def test_numbers_are_written_as_the_language_writes_them(lang, count, half, share, big):
    with reading(lang):
        assert i18n.number(19218) == count
        assert i18n.number(0.5, 1) == half
        assert i18n.number(0.1234, 1, percent=True) == share
        assert i18n.number(1234567.891, 2) == big
        assert i18n.number(-3) == "-3"


def test_fill_writes_the_numbers_of_a_translated_template_in_german():
    with reading("de"):
        time = i18n.fill(choices.DEGRADATION_TIME, steps=19218)
        text = i18n.fill("{n:,} characters", n=1500)
        kept = i18n.fill("Checking {name}…", name="a,b.zip")  # a text value stays as it is
    assert time.startswith("Vier Netze, je 19.218 Schritte. Gemessen mit bench/degradation.py")
    assert (text, kept) == ("1.500 Zeichen", "a,b.zip wird geprüft…")
    with reading("en"):
        assert i18n.fill(choices.DEGRADATION_TIME, steps=19218).startswith(
            "Four nets, 19,218 steps"
        )


def test_charts_take_the_languages_separators():
    snap = {}
    with reading("de"):
        assert i18n.plotly_separators() == ",."
        german = figures.curves_figure(snap, "loss")
    with reading("en"):
        english = figures.curves_figure(snap, "loss")
    assert german.layout.separators == ",." and english.layout.separators == ".,"
    assert german.layout.title.text == "Verlust" and english.layout.title.text == "Loss"


def test_said_text_reads_as_english_and_translates_with_its_values():
    said = say("{name} must be a whole number from {lo:,} to {hi:,}, got {got}",
               name="the seed", lo=0, hi=2**31 - 1, got="-1")  # fmt: skip
    assert said == "the seed must be a whole number from 0 to 2,147,483,647, got -1"
    with reading("de"):
        assert (
            i18n.tr(said) == "der Seed muss eine ganze Zahl von 0 bis 2.147.483.647 sein, nicht -1"
        )
    with reading("en"):
        assert i18n.tr(said) == said


def test_a_settings_refusal_from_core_is_shown_in_german():
    with pytest.raises(ExplainedError) as caught:
        TrainConfig(lr=50.0).validate()
    english = str(caught.value)
    assert english == (
        "training settings: learning rate must be a number from 1e-06 to 10, got 50.0; "
        "0.1 for SGD or 0.001 for Adam"
    )
    with reading("de"):
        assert i18n.tr(caught.value) == (
            "Trainingseinstellungen: die Lernrate muss eine Zahl von 1e-06 bis 10 sein, "
            "nicht 50.0; "
            "0,1 für SGD oder 0,001 für Adam"
        )
    with reading("en"):
        assert i18n.tr(caught.value) == english


def test_a_choice_refusal_names_the_place_in_german():
    with pytest.raises(ExplainedError) as caught:
        checks.choice("sgdx", "optimizer", ("sgd", "adam"), where="block 3")
    with reading("de"):
        shown = i18n.tr(caught.value)
    assert shown == "Block 3: der Optimierer 'sgdx' gibt es nicht; wählen Sie eines von: sgd, adam"


def test_the_race_warning_and_verdict_come_in_german():
    warning = experiments.too_short(14, 100)
    assert warning.startswith("14 layers is too shallow and 100 steps is too short to show")
    with reading("de"):
        assert i18n.tr(warning).startswith("14 Schichten sind zu flach und 100 Schritte zu kurz")
        assert choices.status_word("finished") == "fertig"
        assert choices.label("zero_pad") == "Auffüllen mit Nullen (Option A)"
    assert choices.status_word("finished") == "finished"


# --- the tool pages in German ------------------------------------------------------------


def _german(name: str):
    at = page(name)
    at.query_params["lang"] = "de"
    at.run()
    assert not at.exception, at.exception
    return at


def test_the_train_page_speaks_german():
    at = _german("train")
    assert at.title[0].value == "Trainieren"
    labels = {w.label for w in at.number_input} | {w.label for w in at.selectbox}
    assert {"Lernrate", "Epochen", "Batchgröße", "Datensatz", "Optimierer"} <= labels
    optimizer = next(s for s in at.selectbox if s.label == "Optimierer")
    assert "SGD mit Momentum (He et al.)" in optimizer.options
    assert at.button[0].label == "Training starten"


def test_the_compare_page_speaks_german():
    at = _german("compare")
    assert at.title[0].value == "Einfache und residuale Netze vergleichen"
    assert [t.label for t in at.tabs][:3] == [
        "Wettrennen: einfach gegen residual", "Degradation (He et al., Abb. 1)",
        "Laufendes Experiment",
    ]  # fmt: skip
    assert {"Tiefe", "Daten", "Schritte"} <= {w.label for w in (*at.selectbox, *at.number_input)}
    assert "Wettrennen starten" in {b.label for b in at.button}
    assert any("Skip-Verbindungen" in c.value for c in at.caption)


def test_the_runs_page_speaks_german(finished_run):
    at = _german("runs")
    assert at.title[0].value == "Ihre Läufe"
    table = at.dataframe[0].value
    assert {"Lauf", "Status", "Schritte", "beste Validierungsgenauigkeit"} <= set(table.columns)
    row = table[table["Lauf"] == finished_run].iloc[0]
    assert row["Status"] == "fertig"
    assert row["beste Validierungsgenauigkeit"].endswith("\u00a0%")
    assert "," in row["beste Validierungsgenauigkeit"]  # 75,0 %, not 75.0%
    shown = next(s for s in at.selectbox if s.label == "Anzeigen")
    assert {"alle", "fertig"} <= set(shown.options)


def test_the_builders_refusal_of_an_identity_skip_is_shown_in_german():
    spec = NetSpec(
        name="t",
        input_shape=(3, 32, 32),
        num_classes=10,
        blocks=(
            ConvSpec(out_channels=16),
            BasicSpec(out_channels=32, stride=2, shortcut="identity"),
        ),
    )
    with pytest.raises(ExplainedError) as caught:
        spec.validate()
    assert str(caught.value).startswith("block 1: the skip goes from 16x32x32 to 32x16x16;")
    with reading("de"):
        assert i18n.tr(caught.value) == (
            "Block 1: die Skip-Verbindung geht von 16x32x32 nach 32x16x16; wählen Sie die "
            "Abkürzung 'projection' oder 'zero-pad', oder schalten Sie die Skip-Verbindung aus"
        )


def test_a_full_queue_is_refused_in_german():
    with pytest.raises(ExplainedError) as caught:
        check_room(active=0, max_per_owner=4, waiting=1200, max_queue=1000)
    with reading("de"):
        assert i18n.tr(caught.value) == (
            "die Warteschlange des Servers ist voll (1200 Läufe warten); versuchen Sie es in "
            "ein paar Minuten wieder"
        )


def test_lesson_claim_numbers_are_written_as_the_language_writes_them():
    from app import lesson_text

    i18n.use_language("de")
    try:
        assert lesson_text.number(0.0931) == "0,0931"
        assert lesson_text.number(19218.0) == "19.218"
        assert lesson_text.number(2.17) == "2,17"
    finally:
        i18n.use_language("en")
    assert lesson_text.number(0.0931) == "0.0931" and lesson_text.number(19218.0) == "19,218"
