"""Lessons as data: every file reads and checks; a broken file is named with the line and
the fix; every lesson's experiment runs to its end at the file's test size and the claims
it makes hold, decided on the real Trainer's logs."""

import dataclasses
import functools
import re
from pathlib import Path

import pytest

from core.lesson_runs import check_claims, metric, plan_lesson, run_lesson
from core.lesson_transfer import LABELS as TRANSFER_LABELS
from core.lessons import LESSON_DIR, Claim, LessonError, load_lessons, parse_lesson, read_lesson

LESSONS = load_lessons()
GOOD = (LESSON_DIR / "02-deeper.md").read_text(encoding="utf-8")


@functools.cache
def _tiny_run(key: str):
    """Each lesson's tiny run once per session: two tests read the switch lesson's."""
    lesson = next(x for x in LESSONS if x.key == key)
    return run_lesson(lesson, tiny=True, device="cpu")


def test_the_ten_lessons_in_the_issue_order():
    assert [lesson.number for lesson in LESSONS] == list(range(1, 11))
    kinds = [lesson.kind for lesson in LESSONS]
    assert kinds[0] == "shapes" and kinds[5] == "shortcut"
    assert all(k == "train" for i, k in enumerate(kinds) if i not in (0, 5))
    for lesson in LESSONS:
        en, de = lesson.text("en"), lesson.text("de")
        assert en.title != de.title and en.question != de.question
        assert set(en.choices) == set(de.choices) == set(lesson.choices)
        assert lesson.answer in lesson.choices
        assert 2 <= en.explanation.count(". ") + 1 <= 8  # two to five sentences, roughly


def test_every_train_lesson_plans_at_both_sizes():
    for lesson in LESSONS:
        if lesson.kind != "train":
            continue
        for tiny in (False, True):
            arms = plan_lesson(lesson, tiny=tiny, device="cpu")
            stage = list(TRANSFER_LABELS) if lesson.transfer is not None else []
            assert [a.label for a in arms] == [a.label for a in lesson.arms] + stage
            assert all(not a.train for a in arms[len(lesson.arms) :])  # their own jobs
            for arm in arms:
                arm.spec.validate()
                arm.config.validate()
            seeds = {a.config.seed for a in arms}
            assert len(seeds) == 1  # twins start alike


@pytest.mark.parametrize("lesson", LESSONS, ids=[lesson.key for lesson in LESSONS])
def test_each_lesson_runs_to_its_end_and_its_claims_hold(lesson):
    result = _tiny_run(lesson.key)
    assert result.claims, "a lesson with nothing to check proves nothing"
    assert result.held, [(c.text, c.numbers) for c in result.claims if not c.held]
    for label, log in result.logs.items():
        arm = next(a for a in plan_lesson(lesson, tiny=True, device="cpu") if a.label == label)
        assert log.last.step == arm.config.steps  # ran to its end
        assert log.evals[-1].step == arm.config.steps


def test_the_skip_switch_is_logged_at_its_step_and_twins_match_until_then():
    lesson = next(x for x in LESSONS if x.key == "08-switch")
    result = _tiny_run(lesson.key)
    arms = {a.label: a for a in plan_lesson(lesson, tiny=True, device="cpu")}
    at = arms["switched"].skips_on_at
    events = [e for e in result.logs["switched"].events if e.kind == "skip"]
    assert [(e.step, e.detail) for e in events] == [(at, "skip on: all blocks")]
    plain = result.logs["plain"].column("loss")[:at]
    switched = result.logs["switched"].column("loss")[:at]
    assert (plain == switched).all()  # one seed: identical until the switch


def test_a_claim_is_decided_by_its_numbers():
    lesson = next(x for x in LESSONS if x.key == "10-costs")
    arms = plan_lesson(lesson, tiny=True, device="cpu")
    wrong = Claim("macs", "resnet20", ">", "resnet56")
    (result,) = check_claims((wrong,), arms, {})
    assert not result.held
    assert result.numbers["resnet56"] > result.numbers["resnet20"] > 0
    # a number of the summary is the one core.model.summary gives
    from core.model import summary

    by_label = {a.label: a for a in arms}
    expected = summary(by_label["plain20"].spec).totals["params"]
    assert metric("params", by_label["plain20"], None) == expected


# --- broken files -------------------------------------------------------------------------


def _broken(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "kind: train",
            "kind: magic",
            "02-x.md, kind: the experiment kind 'magic' is unknown; "
            "use one of: shapes, shortcut, train",
        ),
        (
            "steps: 150",
            "stepz: 150",
            "02-x.md, line 6: the header has an unknown key 'stepz'; use one of: kind,",
        ),
        (
            "arm: plain56 = plain56",
            "arm: plain56 = plain57",
            "02-x.md, line 10: there is no net called 'plain57'",
        ),
        (
            "claim: train_loss plain56 > plain20",
            "claim: train_loss plain56 > plain99",
            "02-x.md, claim: the claim 'train_loss plain56 > plain99' names 'plain99', "
            "which is no arm; use one of the arms: plain20, plain56",
        ),
        ("answer: plain20", "answer: plain30", "02-x.md, choices/answer: a question needs"),
        ("## de", "## fr", "02-x.md, line "),
        ("\n### question\nWelches", "\n### frage\nWelches", "'### frage' is unknown"),
        ("arm: plain20 = plain20", "arm: plain20 = plain20 bn=maybe", "bn=maybe is not available"),
        ("claim: train_loss", "claim: os.system('x')", "is not 'metric arm < other'"),
    ],
)
def test_a_broken_file_is_named_with_its_line_and_fix(old, new, message):
    with pytest.raises(LessonError) as e:
        parse_lesson(_broken(old, new), "02-x", 2)
    assert message in str(e.value)
    assert e.value.where.startswith("02-x.md")
    assert e.value.fix  # what to do


def test_a_missing_language_is_named():
    cut = GOOD[: GOOD.index("## de")]
    with pytest.raises(LessonError, match=re.escape("02-x.md: the lesson has no '## de' section")):
        parse_lesson(cut, "02-x", 2)


def test_files_are_capped_named_and_numbered(tmp_path: Path):
    big = tmp_path / "01-big.md"
    big.write_text(GOOD + "x" * 40_000, encoding="utf-8")
    with pytest.raises(LessonError, match=re.escape("01-big.md: the file has 4")):
        read_lesson(big)
    odd = tmp_path / "Lesson One.md"
    odd.write_text(GOOD, encoding="utf-8")
    with pytest.raises(
        LessonError, match=re.escape("Lesson One.md: the file name must be a number")
    ):
        read_lesson(odd)
    binary = tmp_path / "03-bin.md"
    binary.write_bytes(b"\xff\xfe---")
    with pytest.raises(LessonError, match=re.escape("03-bin.md: the file is not UTF-8")):
        read_lesson(binary)
    big.unlink(), odd.unlink(), binary.unlink()
    (tmp_path / "02-a.md").write_text(GOOD, encoding="utf-8")
    (tmp_path / "02-b.md").write_text(GOOD, encoding="utf-8")
    with pytest.raises(LessonError, match=re.escape("two lessons have the number 2")):
        load_lessons(tmp_path)


def test_settings_out_of_range_are_refused_when_planned():
    lesson = parse_lesson(_broken("steps: 150", "steps: 999999"), "02-x", 2)
    with pytest.raises(
        LessonError, match=re.escape("02-x.md: steps must be a whole number from 1 to")
    ):
        plan_lesson(lesson)
    lesson = dataclasses.replace(lesson, settings={**lesson.settings, "steps": "ten"})
    with pytest.raises(LessonError, match=re.escape("got 'ten'")):
        plan_lesson(lesson)


def test_the_bench_runs_and_reports_each_lesson(capsys):
    import sys

    bench_dir = str(Path(__file__).resolve().parents[2] / "bench")
    sys.path.insert(0, bench_dir)
    try:
        import lessons as bench
    finally:
        sys.path.remove(bench_dir)
    rows = bench.main(["--tiny", "--device", "cpu", "--only", "01-shapes", "06-shortcuts"])
    assert [(r["key"], r["held"]) for r in rows] == [("01-shapes", True), ("06-shortcuts", True)]
    out = capsys.readouterr().out
    assert "01-shapes" in out and "claims held" in out


def test_job_groups_share_one_config_and_dataset_each():
    from core.lesson_runs import job_groups

    by_key = {lesson.key: lesson for lesson in LESSONS}
    groups = job_groups(plan_lesson(by_key["02-deeper"]))
    assert [[a.label for a in g] for _, _, g in groups] == [["plain20", "plain56"]]
    groups = job_groups(plan_lesson(by_key["04-helpers"]))  # lr and optimizer differ
    assert [[a.label for a in g] for _, _, g in groups] == [["nobn"], ["bn"], ["adam"]]
    groups = job_groups(plan_lesson(by_key["10-costs"]))  # only the small-data net trains
    assert [(d.subset, [a.label for a in g]) for _, d, g in groups] == [(100, ["small"])]


def test_the_transfer_stage_runs_after_the_arms_and_its_mean_accuracy_is_the_claims():
    result = _tiny_run("09-generalise")
    assert set(TRANSFER_LABELS) <= set(result.logs)
    assert result.details["transfer_seconds"] > 0
    arms = {a.label: a for a in plan_lesson(LESSONS[8], tiny=True, device="cpu")}
    for label in ("transferred", "scratch"):
        log = result.logs[label]
        expect = sum(e.accuracy for e in log.evals) / len(log.evals)
        assert metric("val_acc_mean", arms[label], log) == pytest.approx(expect)
    (claim,) = (c for c in result.claims if "transferred" in c.text)
    assert claim.text == "val_acc_mean transferred > scratch" and claim.held
