"""Lessons as data: one Markdown file per lesson under assets/lessons/, read and checked
at start. A file is a header of `key: value` lines between two `---` lines (which
experiment, its settings, its claims), then one `## en` and one `## de` section of
`### title`, `### explanation`, `### question`, `### choices`, `### answer`.

Lesson files are edited by teachers, so they are treated as untrusted text: size caps,
a strict line grammar, nothing evaluated. Running a lesson is `core.lesson_runs`' job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from core.lesson_texts import LessonError, LessonText, read_texts
from core.lesson_transfer import LABELS as TRANSFER_LABELS
from core.lesson_transfer import TransferStage, parse_transfer

LESSON_DIR = Path(__file__).resolve().parents[1] / "assets" / "lessons"
KINDS = ("shapes", "shortcut", "train")  # the claim checkers core.lesson_runs has
MAX_FILE_BYTES = 32_000  # ten times the longest lesson: a teacher's edit, not a book
MAX_LESSONS = 50
MAX_ARMS = 4  # four nets interleaved is the most a 2-core CPU trains in a minute
MAX_CLAIMS = 6
SETTINGS = {  # header key -> (what it is, for messages)
    "kind": "the experiment: shapes, shortcut or train",
    "data": "the dataset: digits or shapes",
    "size": "the image side in pixels",
    "subset": "how many training images to keep",
    "steps": "optimizer steps per net",
    "batch": "images per step",
    "lr": "the learning rate",
    "optimizer": "sgd or adam",
    "widths": "filters per stage, e.g. 8,16,32",
    "seed": "the seed shared by every net",
    "chart": "what the page charts",
    "net": "the net whose shapes are shown",
    "change": "the change to watch, e.g. block=1 stride=2",
    "choices": "the answers to pick from, e.g. plain20, plain56",
    "answer": "the right choice",
    "explore": "the tool page that continues the lesson",
    "transfer": "a transfer stage after the arms, e.g. net=resnet20 source=0-4 target=5-9",
}
REPEATED = ("arm", "claim", "test")  # keys that may appear on several lines
CHARTS = ("train_loss", "val_accuracy", "grad_norms", "shapes", "summary")
PAGES = ("build", "train", "compare", "explain")
NET_NAME = re.compile(r"(plain|resnet)(\d{1,3})|dense_plain|dense_residual|small_cnn")
ARM_OPTIONS = {  # option -> allowed values (None: a number, checked when the lesson runs)
    "bn": ("on", "off"),
    "act": ("relu", "tanh", "sigmoid", "gelu"),
    "init": ("kaiming", "xavier", "default", "small_normal"),
    "optimizer": ("sgd", "adam"),
    "lr": None,
    "subset": None,
    "skips_on_at": None,
    "train": ("yes", "no"),
}
METRICS = (  # what a claim can compare; core.lesson_runs computes each
    "train_loss",  # mean training loss of the last 10% of steps
    "train_acc",  # mean training accuracy of the last 10% of steps
    "val_acc",  # the last validation accuracy
    "val_acc_mean",  # the mean of every validation accuracy of the run: how fast it learns
    "gap",  # train_acc - val_acc
    "grad_ratio",  # first layer's gradient norm over the last block's, geometric mean
    "grad_ratio_init",  # the same at the first step
    "grad_boost",  # first layer's gradient after the skips switch on, over before
    "loss_jump",  # the highest loss just after the switch, over the loss just before
    "loss_fall",  # the highest loss just after the switch, over the final train_loss
    "params",
    "macs",
    "memory",  # activation MB for one batch
)
ARM_LINE = re.compile(r"([a-z][a-z0-9_]{0,23})\s*=\s*([a-z0-9_]+)((?:\s+[a-z_]+=[a-z0-9_.]+)*)")
CLAIM_LINE = re.compile(
    r"([a-z_]+)\s+([a-z][a-z0-9_]{0,23})\s*([<>=])\s*([a-z][a-z0-9_]{0,23}|[0-9.e+-]+)"
)


@dataclass(frozen=True)
class Arm:
    """One net of a lesson: `label = net option=value ...`."""

    label: str
    net: str
    options: tuple[tuple[str, str], ...] = ()

    def option(self, key: str, default: str | None = None) -> str | None:
        return dict(self.options).get(key, default)


@dataclass(frozen=True)
class Claim:
    """`metric arm < other` (other: an arm label or a number), read without evaluating."""

    metric: str
    arm: str
    op: str
    other: str  # an arm label or a number, as written

    @property
    def number(self) -> float | None:
        try:
            return float(self.other)
        except ValueError:
            return None

    def __str__(self) -> str:
        return f"{self.metric} {self.arm} {self.op} {self.other}"


@dataclass(frozen=True)
class Lesson:
    key: str  # the file name without .md, e.g. "02-deeper"
    number: int  # from the file name's leading digits: the lesson's place in the list
    kind: str
    settings: dict[str, str]
    arms: tuple[Arm, ...]
    claims: tuple[Claim, ...]
    test: dict[str, str]  # settings for the tiny run of the test suite
    texts: dict[str, LessonText]
    transfer: TransferStage | None = None  # a second stage: core.lesson_transfer

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(c.strip() for c in self.settings["choices"].split(","))

    @property
    def answer(self) -> str:
        return self.settings["answer"]

    def text(self, lang: str) -> LessonText:
        """The texts in `lang`, English for a language the lesson lacks."""
        return self.texts.get(lang, self.texts["en"])


def load_lessons(folder: Path = LESSON_DIR) -> list[Lesson]:
    """Every `NN-name.md` of `folder`, checked, in the order of their numbers.

    Raises:
        LessonError: naming the file, the line or key, and what to do.
    """
    paths = sorted(p for p in folder.glob("*.md") if p.name != "README.md")
    if not paths:
        raise LessonError("there are no lessons", where=str(folder), fix="add a NN-name.md file")
    if len(paths) > MAX_LESSONS:
        raise LessonError(
            f"there are {len(paths)} lesson files, at most {MAX_LESSONS} are read",
            where=folder.name,
            fix="move some elsewhere",
        )
    lessons = [read_lesson(p) for p in paths]
    numbers = [lesson.number for lesson in lessons]
    for lesson in lessons:
        if numbers.count(lesson.number) > 1:
            raise LessonError(
                f"two lessons have the number {lesson.number}",
                where=f"{lesson.key}.md",
                fix="give each file its own leading number",
            )
    return sorted(lessons, key=lambda lesson: lesson.number)


def read_lesson(path: Path) -> Lesson:
    """One lesson file, checked. Raises LessonError."""
    where = path.name
    match = re.fullmatch(r"(\d{1,3})-[a-z0-9-]{1,40}\.md", path.name)
    if not match:
        raise LessonError(
            "the file name must be a number, a dash and a short lowercase name",
            where=where,
            fix="rename it like 11-my-lesson.md",
        )
    if path.stat().st_size > MAX_FILE_BYTES:
        raise LessonError(
            f"the file has {path.stat().st_size:,} bytes, at most {MAX_FILE_BYTES:,} are read",
            where=where,
            fix="shorten the texts",
        )
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise LessonError(
            "the file is not UTF-8 text", where=where, fix="save it as UTF-8"
        ) from None
    return parse_lesson(text, path.stem, int(match.group(1)))


def parse_lesson(text: str, key: str, number: int) -> Lesson:
    """A lesson from its text; `key` names it in messages. Raises LessonError."""
    file = f"{key}.md"
    lines = text.replace("\r\n", "\n").split("\n")
    if not lines or lines[0].strip() != "---" or "---" not in (s.strip() for s in lines[1:]):
        raise LessonError(
            "the file must start with a header between two '---' lines",
            where=f"{file}, line 1",
            fix="put the settings (kind: train, ...) between '---' lines at the top",
        )
    end = 1 + [s.strip() for s in lines[1:]].index("---")
    settings, repeated = _header(lines[1:end], file)
    lesson = Lesson(
        key=key,
        number=number,
        kind=settings["kind"],
        settings=settings,
        arms=tuple(_arm(v, file, n) for n, v in repeated["arm"]),
        claims=tuple(_claim(v, file, n) for n, v in repeated["claim"]),
        test=_pairs(" ".join(v for _, v in repeated["test"]), file, "test"),
        texts=read_texts(lines, end + 1, file),
        transfer=parse_transfer(settings["transfer"], file) if "transfer" in settings else None,
    )
    _check(lesson, file)
    return lesson


def _header(lines: list[str], file: str) -> tuple[dict[str, str], dict[str, list]]:
    settings: dict[str, str] = {}
    repeated: dict[str, list[tuple[int, str]]] = {k: [] for k in REPEATED}
    for n, line in enumerate(lines, start=2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep or not value:
            raise LessonError(
                f"{line.strip()[:40]!r} is not a 'key: value' line",
                where=f"{file}, line {n}",
                fix="write one setting per line, like 'steps: 200'",
            )
        if key in REPEATED:
            repeated[key].append((n, value))
        elif key not in SETTINGS:
            raise LessonError(
                f"the header has an unknown key {key[:30]!r}",
                where=f"{file}, line {n}",
                fix=f"use one of: {', '.join((*SETTINGS, *REPEATED))}",
            )
        elif key in settings:
            raise LessonError(f"{key} is set twice", where=f"{file}, line {n}", fix="keep one")
        else:
            settings[key] = value[:200]
    for key in ("kind", "choices", "answer"):
        if key not in settings:
            raise LessonError(
                f"the header has no '{key}' line",
                where=file,
                fix=f"add '{key}: ...' ({SETTINGS[key]})",
            )
    return settings, repeated


def _pairs(text: str, file: str, where: str) -> dict[str, str]:
    """'a=1 b=two' -> {'a': '1', 'b': 'two'}."""
    out = {}
    for item in text.split():
        key, sep, value = item.partition("=")
        if not sep or not value:
            raise LessonError(
                f"{item[:30]!r} is not key=value", where=f"{file}, {where}", fix="write steps=40"
            )
        out[key] = value
    return out


def _arm(value: str, file: str, line: int) -> Arm:
    where = f"{file}, line {line}"
    m = ARM_LINE.fullmatch(value)
    if not m:
        raise LessonError(
            f"the arm {value[:40]!r} is not 'label = net option=value ...'",
            where=where,
            fix="write e.g. 'arm: plain20 = plain20 bn=off'",
        )
    label, net, rest = m.groups()
    m = NET_NAME.fullmatch(net)
    depth = int(m.group(2)) if m and m.group(2) else None
    if not m or (depth is not None and ((depth - 2) % 6 or not 8 <= depth <= 110)):
        raise LessonError(
            f"there is no net called {net!r}",
            where=where,
            fix="use plainN or resnetN (N = 6n+2 from 8 to 110: 8, 14, 20, 32, 56), dense_plain, "
            "dense_residual or small_cnn",
        )
    options = _pairs(rest, file, f"line {line}")
    for key, val in options.items():
        if key not in ARM_OPTIONS:
            raise LessonError(
                f"the arm option {key!r} is unknown",
                where=where,
                fix=f"use one of: {', '.join(ARM_OPTIONS)}",
            )
        allowed = ARM_OPTIONS[key]
        if allowed is not None and val not in allowed:
            raise LessonError(
                f"{key}={val} is not available", where=where, fix=f"use one of: {allowed}"
            )
    return Arm(label, net, tuple(options.items()))


def _claim(value: str, file: str, line: int) -> Claim:
    where = f"{file}, line {line}"
    m = CLAIM_LINE.fullmatch(value)
    if not m:
        raise LessonError(
            f"the claim {value[:40]!r} is not 'metric arm < other'",
            where=where,
            fix="write e.g. 'claim: train_loss plain56 > plain20'",
        )
    claim = Claim(*m.groups())
    if claim.metric not in METRICS:
        raise LessonError(
            f"the claim measures {claim.metric!r}, which is not known",
            where=where,
            fix=f"use one of: {', '.join(METRICS)}",
        )
    if claim.other[0].isdigit() and claim.number is None:
        raise LessonError(f"{claim.other!r} is not a number", where=where, fix="write e.g. 0.1")
    return claim


def _check(lesson: Lesson, file: str) -> None:
    """What the grammar alone cannot see: references between the parts."""
    s = lesson.settings
    if lesson.kind not in KINDS:
        raise LessonError(
            f"the experiment kind {lesson.kind!r} is unknown",
            where=f"{file}, kind",
            fix=f"use one of: {', '.join(KINDS)}",
        )
    if len(set(lesson.choices)) < 2 or lesson.answer not in lesson.choices:
        raise LessonError(
            "a question needs at least two different choices, and the answer must be one",
            where=f"{file}, choices/answer",
            fix=f"the answer {lesson.answer!r} must be in: {s['choices']}",
        )
    for lang, text in lesson.texts.items():
        if tuple(text.choices) != lesson.choices:
            raise LessonError(
                f"the choices are {', '.join(text.choices)}, the header says {s['choices']}",
                where=f"{file}, section {lang}, ### choices",
                fix="label each choice of the header once, in its order",
            )
    for key, allowed in (("chart", CHARTS), ("explore", PAGES)):
        if key in s and s[key] not in allowed:
            raise LessonError(
                f"{key} {s[key]!r} is not available",
                where=f"{file}, {key}",
                fix=f"use one of: {', '.join(allowed)}",
            )
    labels = [a.label for a in lesson.arms]
    if lesson.kind == "train" and not 1 <= len(labels) <= MAX_ARMS:
        raise LessonError(
            f"a train lesson needs one to {MAX_ARMS} 'arm:' lines, it has {len(labels)}",
            where=file,
            fix="add or remove arm lines",
        )
    if lesson.transfer is not None:  # its arms can be named in claims
        labels += TRANSFER_LABELS
    if len(set(labels)) != len(labels) or len(lesson.claims) > MAX_CLAIMS:
        raise LessonError(
            f"arm labels must differ and claims be at most {MAX_CLAIMS}",
            where=file,
            fix="rename the arm or drop a claim",
        )
    if lesson.kind == "train" and not lesson.claims:
        raise LessonError("a train lesson needs a 'claim:' line", where=file, fix="add one")
    for claim in lesson.claims:
        for label in (claim.arm, claim.other):
            if label[0].isalpha() and label not in labels:
                raise LessonError(
                    f"the claim '{claim}' names {label!r}, which is no arm",
                    where=f"{file}, claim",
                    fix=f"use one of the arms: {', '.join(labels)}",
                )
