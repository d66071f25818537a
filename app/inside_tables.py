"""The data behind each Inside figure as CSV text (full precision, one row per point), for
the download buttons. Pure functions; no streamlit."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.confusion import Confusion
    from core.landscape import Slice1D, Slice2D
    from core.lesion import LesionStudy
    from core.overfitting import Gap
    from core.telemetry import Snapshot


def _csv(header: list[str], rows: Iterable[Iterable]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return out.getvalue()


def lesion_csv(studies: Mapping[str, LesionStudy]) -> str:
    """One row per net and block: the accuracy with it deleted, and what stood in."""
    rows = []
    for name, s in studies.items():
        rows.append([name, "", "none", s.baseline, s.images])
        rows += [
            [name, r.block, r.how, a, s.images] for r, a in zip(s.removable, s.single, strict=True)
        ]
    return _csv(["net", "block", "deleted_as", "accuracy", "images"], rows)


def k_curve_csv(studies: Mapping[str, LesionStudy]) -> str:
    rows = [
        [name, k, m, sd, len(s.k_draws[k - 1]) if k else 1]
        for name, s in studies.items()
        for k, m, sd in zip(s.ks, s.k_mean, s.k_std, strict=True)
    ]
    return _csv(["net", "k", "mean_accuracy", "std_accuracy", "draws"], rows)


def slice_1d_csv(slices: Mapping[str, Slice1D]) -> str:
    rows = [
        [name, a, loss, acc]
        for name, s in slices.items()
        for a, loss, acc in zip(s.alphas, s.losses, s.accuracies, strict=True)
    ]
    return _csv(["net", "alpha", "loss", "accuracy"], rows)


def slice_2d_csv(slices: Mapping[str, Slice2D]) -> str:
    rows = [
        [name, a, b, s.losses[j][i], s.accuracies[j][i]]
        for name, s in slices.items()
        for j, b in enumerate(s.betas)
        for i, a in enumerate(s.alphas)
    ]
    return _csv(["net", "alpha", "beta", "loss", "accuracy"], rows)


def confusion_csv(confs: Mapping[str, Confusion]) -> str:
    """Every cell of every net's matrix: count and share of its true class."""
    rows = [
        [name, conf.classes[t], conf.classes[p], conf.counts[t][p], conf.rates[t][p]]
        for name, conf in confs.items()
        for t in range(len(conf.classes))
        for p in range(len(conf.classes))
    ]
    return _csv(["net", "true", "predicted", "count", "share_of_true"], rows)


def per_class_csv(confs: Mapping[str, Confusion]) -> str:
    rows = [
        [name, cls, sum(conf.counts[i]), "" if a is None else a]
        for name, conf in confs.items()
        for i, (cls, a) in enumerate(zip(conf.classes, conf.per_class, strict=True))
    ]
    return _csv(["net", "class", "images", "accuracy"], rows)


def mistakes_csv(confs: Mapping[str, Confusion]) -> str:
    rows = [
        [name, m.index, conf.classes[m.true], conf.classes[m.predicted], m.confidence]
        for name, conf in confs.items()
        for m in conf.mistakes
    ]
    return _csv(["net", "val_index", "true", "predicted", "confidence"], rows)


def gap_csv(runs: Mapping[str, Mapping[str, tuple[Snapshot, Gap | None]]]) -> str:
    rows = []
    for label, arms in runs.items():
        for arm, (_, g) in arms.items():
            if g is not None:
                rows.append([label, arm, g.step, g.train, g.val, g.gap])
    return _csv(["run", "net", "step", "train_accuracy", "val_accuracy", "gap"], rows)
