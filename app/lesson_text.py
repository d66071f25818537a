"""The words a lesson page builds from a run: each claim in the reader's language, with
the numbers it was decided on. Nothing here is fixed text about the result: a claim that
did not hold says so, with its numbers."""

from __future__ import annotations

import math

from app.i18n import N_, _, figure
from core.lesson_runs import ClaimResult, changed_plans
from core.lesson_transfer import SOURCE, TransferStage
from core.lessons import Lesson
from core.spec import format_shape

METRICS = {
    "train_loss": N_("training loss (mean of the last tenth of the steps)"),
    "train_acc": N_("training accuracy (mean of the last tenth of the steps)"),
    "val_acc": N_("validation accuracy"),
    "val_acc_mean": N_("mean validation accuracy over the run"),
    "gap": N_("gap between training and validation accuracy"),
    "grad_ratio": N_("gradient of the first layer over the last block's"),
    "grad_ratio_init": N_("gradient of the first layer over the last block's, at the start"),
    "grad_boost": N_("growth of the first layer's gradient when the skips switch on"),
    "loss_jump": N_("jump of the loss when the skips switch on"),
    "loss_fall": N_("fall of the loss from that jump to the end"),
    "params": N_("parameters"),
    "macs": N_("multiply-adds per image"),
    "memory": N_("activation memory for one batch (MB)"),
}
OPS = {"<": N_("is below"), ">": N_("is above"), "=": N_("equals")}


def _sentence(text: str) -> str:
    """The first letter up, the rest as written (German nouns keep their capitals)."""
    return text[:1].upper() + text[1:]


def number(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if float(value).is_integer() and abs(value) >= 1000:
        return figure(int(value), ",")  # 19,218; German 19.218
    return figure(value, ".3g")  # 0.093; German 0,093


def claim_lines(lesson: Lesson, results: tuple[ClaimResult, ...]) -> list[tuple[bool, str]]:
    """(held, sentence) per claim of the lesson, in the reader's language."""
    if lesson.kind == "shapes":
        return _shape_lines(lesson, results)
    if lesson.kind == "shortcut":
        return _shortcut_lines(results)
    lines = []
    for claim, result in zip(lesson.claims, results, strict=True):
        left = result.numbers.get(claim.arm, math.nan)
        right = result.numbers.get(claim.other, math.nan)
        other = claim.other if claim.number is None else ""
        text = _("{metric}: {arm} {left} {op} {other} {right}").format(
            metric=_sentence(_(METRICS[claim.metric])),
            arm=f"**{claim.arm}**",
            left=number(left),
            op=_(OPS[claim.op]),
            other=f"**{other}**" if other else "",
            right=number(right),
        )
        lines.append((result.held, " ".join(text.split())))
    return lines


def _shape_lines(lesson: Lesson, results) -> list[tuple[bool, str]]:
    change = lesson.settings.get("change", "")
    first, second = results[0], results[1]
    before, after = first.numbers.get("params before"), first.numbers.get("params after")
    shapes = second.text.partition(": ")[2].split(" becomes ")
    return [
        (
            first.held,
            _(
                "The change {change} changes the output shape of that block and of every "
                "block after it; the net's parameters: {before} before, {after} after."
            ).format(change=f"`{change}`", before=number(before), after=number(after)),
        ),
        (
            second.held,
            _("Its output was {before} and is now {after}.").format(
                before=shapes[0], after=shapes[-1]
            ),
        ),
    ]


def _shortcut_lines(results) -> list[tuple[bool, str]]:
    refused, costs = results[0], results[1]
    message = refused.text.partition(" is refused: ")[2]
    return [
        (
            refused.held,
            _("The builder refuses an identity shortcut where the shape changes: {message}").format(
                message=f"“{message}”"
            ),
        ),
        (
            costs.held,
            _(
                "Zero-padding costs no parameters, the 1x1 projection some: {pad} against "
                "{projection} parameters in the whole net."
            ).format(
                pad=number(costs.numbers.get("params zero-pad")),
                projection=number(costs.numbers.get("params projection")),
            ),
        ),
    ]


def shape_rows(lesson: Lesson) -> list[tuple[str, str, str]]:
    """Lesson 1's table: (block, output shape before the change, after it) per block."""
    spec, _change, before, after = changed_plans(lesson)
    rows = zip(spec.blocks, before.blocks, after.blocks, strict=True)
    return [
        (f"{k}: {b.kind}", format_shape(x.out_shape), format_shape(y.out_shape))
        for k, (b, x, y) in enumerate(rows)
    ]


def _classes(classes: tuple[int, ...]) -> str:
    contiguous = classes == tuple(range(classes[0], classes[-1] + 1))
    return f"{classes[0]}–{classes[-1]}" if contiguous else ", ".join(map(str, classes))


def transfer_caption(stage: TransferStage, outcome) -> str:
    """Which stage of a transfer runs (or ran), with the source net's accuracy once known."""
    source = outcome.snapshots.get(SOURCE)
    parts = [
        _("Stage 1 of 2: a {net} learns the classes {source} ({steps} steps).")
        .format(net=stage.net, source=_classes(stage.source), steps=stage.source_steps)
    ]  # fmt: skip
    if source is not None and source.evals:
        parts.append(
            _("It recognises {acc:.0%} of its validation images.").format(
                acc=source.evals[-1].accuracy
            )
        )
    if outcome.stage == 2 or not outcome.running:
        parts.append(
            _(
                "Stage 2 of 2: its copy (transferred) and a fresh net (scratch) learn the "
                "classes {target} from {n} images, on the same batches ({steps} steps)."
            ).format(target=_classes(stage.target), n=stage.subset, steps=stage.steps)
        )
    else:
        parts.append(_("Stage 2 starts when it is done."))
    return " ".join(parts)
