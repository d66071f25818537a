"""The texts of a lesson file: one `## en` and one `## de` section, each with
`### title`, `### explanation`, `### question`, `### choices` (`- key: label` lines) and
`### answer`. Plain text only: nothing in them is run or rendered as code here.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import ExplainedError

LANGUAGES = ("en", "de")
FIELDS = ("title", "explanation", "question", "choices", "answer")
MAX_TEXT = 1_500  # characters per text field: two to five sentences, with room


class LessonError(ExplainedError):
    """A lesson file that cannot be used: which file, which line or key, what to do."""


@dataclass(frozen=True)
class LessonText:
    title: str
    explanation: str
    question: str
    choices: dict[str, str]  # choice key -> label, in the header's order
    answer: str


def read_texts(lines: list[str], start: int, file: str) -> dict[str, LessonText]:
    """The `## en` and `## de` sections, each with every field of FIELDS."""
    sections: dict[str, dict[str, list[str]]] = {}
    lang = field = None
    for n, line in enumerate(lines[start:], start=start + 1):
        if line.startswith("## "):
            lang = line[3:].strip()
            if lang not in LANGUAGES or lang in sections:
                raise LessonError(
                    f"the section '## {lang[:10]}' is unknown or repeated",
                    where=f"{file}, line {n}",
                    fix=f"write one section per language: {', '.join(LANGUAGES)}",
                )
            sections[lang], field = {}, None
        elif line.startswith("### "):
            field = line[4:].strip()
            if lang is None or field not in FIELDS or field in sections[lang]:
                raise LessonError(
                    f"'### {field[:20]}' is unknown, repeated or outside a language section",
                    where=f"{file}, line {n}",
                    fix=f"use {', '.join(FIELDS)}, once each, under '## en' or '## de'",
                )
            sections[lang][field] = []
        elif line.strip():
            if field is None:
                raise LessonError(
                    "text outside a '### field'",
                    where=f"{file}, line {n}",
                    fix="put it under ### title, ### explanation, ...",
                )
            sections[lang][field].append(line.strip())
    return {lang: _text(lang, body, file) for lang, body in sections.items()} | {
        lang: _missing(lang, file) for lang in LANGUAGES if lang not in sections
    }


def _missing(lang: str, file: str):
    raise LessonError(
        f"the lesson has no '## {lang}' section",
        where=file,
        fix=f"add the texts in {'German' if lang == 'de' else 'English'}",
    )


def _text(lang: str, body: dict[str, list[str]], file: str) -> LessonText:
    where = f"{file}, section {lang}"
    for name in FIELDS:
        if not body.get(name):
            raise LessonError(f"'### {name}' is missing or empty", where=where, fix="write it")
    joined = {k: " ".join(v) for k, v in body.items()}
    for name, value in joined.items():
        if len(value) > MAX_TEXT:
            raise LessonError(
                f"'### {name}' has {len(value):,} characters, at most {MAX_TEXT:,} are shown",
                where=where,
                fix="shorten it",
            )
    choices = {}
    for line in body["choices"]:
        key, sep, label = line.removeprefix("- ").partition(":")
        if not sep or not label.strip():
            raise LessonError(
                f"the choice {line[:40]!r} is not '- key: label'",
                where=where,
                fix="write e.g. '- plain20: the 20-layer net'",
            )
        choices[key.strip()] = label.strip()
    return LessonText(
        joined["title"], joined["explanation"], joined["question"], choices, joined["answer"]
    )
