"""The Inside figures and their CSV: the plotted numbers and the downloaded rows are the
result's numbers, twins share one scale, and the gap is marked where the runs put it."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from app import inside_figures as figs
from app import inside_tables as tables
from core.confusion import confusion_from
from core.landscape import Slice1D, Slice2D
from core.lesion import IDENTITY, SHORTCUT, Kept, LesionStudy, Removal
from core.overfitting import gap
from core.telemetry import EvalRecord, RunLog, StepRecord


def _rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def studies() -> dict[str, LesionStudy]:
    plain = LesionStudy(
        "Plain-8",
        100,
        0.9,
        (Removal(1, IDENTITY), Removal(2, IDENTITY)),
        (Kept(0, "it changes the shape"),),
        (0.1, 0.2),
        ((0.1, 0.2), (0.05,)),
    )
    res = LesionStudy(
        "ResNet-8",
        100,
        0.95,
        (Removal(0, SHORTCUT), Removal(1, SHORTCUT), Removal(2, SHORTCUT)),
        (),
        (0.5, 0.9, 0.93),
        ((0.5, 0.9, 0.93), (0.4, 0.6, 0.8), (0.3,)),
    )
    return {"Plain-8": plain, "ResNet-8": res}


def test_lesion_bars_are_the_single_lesions_on_one_axis(studies):
    fig = figs.lesion_figure(studies)
    bars = [t for t in fig.data if t.type == "bar"]
    assert [t.name for t in bars] == ["Plain-8", "ResNet-8"]
    assert list(bars[0].x) == ["block 1", "block 2"]
    assert np.allclose(bars[0].y, [10, 20]) and np.allclose(bars[1].y, [50, 90, 93])
    assert [s["y0"] for s in fig.layout.shapes] == [90, 95]  # the intact nets
    assert tuple(fig.layout.yaxis.range) == (0, 100)
    assert bars[0].marker.color != bars[1].marker.color  # orange vs blue


def test_k_curve_is_the_mean_with_a_band_of_one_standard_deviation(studies):
    fig = figs.k_curve_figure(studies)
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    res = studies["ResNet-8"]
    assert list(lines[1].x) == [0, 1, 2, 3]
    expected = [95, np.mean([50, 90, 93]), np.mean([40, 60, 80]), 30]
    assert np.allclose(lines[1].y, expected)
    band = [t for t in fig.data if t.fill == "toself"][1]
    std1 = np.std([0.5, 0.9, 0.93]) * 100  # numpy's population std: the oracle
    assert np.isclose(band.y[1], expected[1] + std1)
    assert np.isclose(band.y[-2], expected[1] - std1)
    assert res.k_std[0] == 0.0


def test_lesion_csvs_hold_every_number(studies):
    rows = _rows(tables.lesion_csv(studies))
    assert len(rows) == 2 + 1 + 3 + 1
    by = {(r["net"], r["block"]): float(r["accuracy"]) for r in rows}
    assert by[("Plain-8", "")] == 0.9 and by[("ResNet-8", "2")] == 0.93
    assert by[("Plain-8", "2")] == 0.2
    k = _rows(tables.k_curve_csv(studies))
    res = [r for r in k if r["net"] == "ResNet-8"]
    assert [float(r["mean_accuracy"]) for r in res] == pytest.approx(
        [0.95, np.mean([0.5, 0.9, 0.93]), 0.6, 0.3]
    )
    assert [int(r["draws"]) for r in res] == [1, 3, 3, 1]
    assert float(res[1]["std_accuracy"]) == pytest.approx(np.std([0.5, 0.9, 0.93]))


def _plane(name: str, offset: float) -> Slice2D:
    a = (-1.0, 0.0, 1.0)
    losses = tuple(tuple(offset + x * x + 2 * y * y for x in a) for y in a)
    acc = tuple(tuple(1 / (1 + v) for v in row) for row in losses)
    return Slice2D(name, a, a, losses, acc, 64)


def test_contour_and_surface_share_one_grid_and_one_colour_scale():
    slices = {"Plain-8": _plane("Plain-8", 0.5), "ResNet-8": _plane("ResNet-8", 0.1)}
    low, high = figs.loss_range(slices)
    assert (low, high) == (0.1, 3.5)
    for fig, lo, hi in (
        (figs.contour_figure(slices), "zmin", "zmax"),
        (figs.surface_figure(slices), "cmin", "cmax"),
    ):
        maps = [t for t in fig.data if t.type in ("contour", "surface")]
        assert len(maps) == 2
        for t, s in zip(maps, slices.values(), strict=True):
            assert np.allclose(np.array(t.z), np.array(s.losses))
            assert list(t.x) == list(s.alphas) and list(t.y) == list(s.betas)
            assert (t[lo], t[hi]) == (low, high)


def test_the_colour_scale_stops_at_the_cap_and_the_csv_is_row_by_beta():
    far = Slice2D(
        "ResNet-8", (0.0, 1.0), (0.0, 1.0), ((0.2, 50.0), (3.0, 7.0)), ((1, 0), (0, 0)), 8
    )
    assert figs.loss_range({"r": far}) == (0.2, figs.LOSS_CAP)
    rows = _rows(tables.slice_2d_csv({"ResNet-8": far}))
    got = {(float(r["alpha"]), float(r["beta"])): float(r["loss"]) for r in rows}
    assert got == {(0.0, 0.0): 0.2, (1.0, 0.0): 50.0, (0.0, 1.0): 3.0, (1.0, 1.0): 7.0}


def test_1d_lines_and_csv_are_the_slice():
    s = Slice1D("ResNet-8", (0.0, 0.5, 1.0), (2.3, 1.0, 0.1), (0.1, 0.5, 0.9), 32)
    fig = figs.slice_1d_figure({"ResNet-8": s}, title="t", x="alpha")
    assert list(fig.data[0].x) == [0.0, 0.5, 1.0] and list(fig.data[0].y) == [2.3, 1.0, 0.1]
    rows = _rows(tables.slice_1d_csv({"ResNet-8": s}))
    assert [(float(r["alpha"]), float(r["loss"]), float(r["accuracy"])) for r in rows] == [
        (0.0, 2.3, 0.1),
        (0.5, 1.0, 0.5),
        (1.0, 0.1, 0.9),
    ]


def test_confusion_heatmaps_and_per_class_bars_are_the_counts():
    true = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 1, 0, 1, 1, 0])
    conf = confusion_from(true, pred, np.linspace(0.5, 1, 6), ("a", "b", "c"), name="ResNet-8")
    counts = figs.confusion_figure(conf).data[0]
    assert np.array_equal(np.array(counts.z), [[2, 1, 0], [0, 2, 0], [1, 0, 0]])
    rates = figs.confusion_figure(conf, normalised=True).data[0]
    assert np.allclose(np.array(rates.z)[0], [2 / 3, 1 / 3, 0]) and rates.zmax == 1
    bars = figs.per_class_figure({"ResNet-8": conf}).data[0]
    assert np.allclose(bars.y, [200 / 3, 100, 0])
    cells = _rows(tables.confusion_csv({"ResNet-8": conf}))
    assert {(r["true"], r["predicted"]): int(r["count"]) for r in cells}[("c", "a")] == 1
    per = _rows(tables.per_class_csv({"ResNet-8": conf}))
    assert [float(r["accuracy"]) for r in per] == pytest.approx([2 / 3, 1.0, 0.0])
    wrong = _rows(tables.mistakes_csv({"ResNet-8": conf}))
    assert [int(r["val_index"]) for r in wrong] == [5, 1]  # most confident first


def test_gap_figure_marks_the_gap_the_log_gives():
    log = RunLog(("a",))
    for s, a in zip(range(1, 9), [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0, 1.0], strict=True):
        log.append_step(StepRecord(s, 0.0, 1.0, a, 0.1, (1.0,), (1.0,), (0.0,)))
    log.append_eval(EvalRecord(4, 0.0, 1.0, 0.6))
    log.append_eval(EvalRecord(8, 0.0, 1.0, 0.7))
    snap = log.snapshot()
    g = gap(snap)
    runs = {"100 images": {"ResNet-8": (snap, g)}}
    fig = figs.gap_figure(runs)
    bar = next(t for t in fig.data if t.hovertemplate and "gap" in t.hovertemplate)
    assert list(bar.x) == [8, 8] and np.allclose(bar.y, [70, np.mean([0.9, 1, 1, 1]) * 100])
    assert [a.text for a in fig.layout.annotations if "gap" in a.text] == ["gap +27.5 points"]
    (row,) = _rows(tables.gap_csv(runs))
    assert float(row["gap"]) == pytest.approx(0.975 - 0.7)
