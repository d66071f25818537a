"""Pure functions for the Explain page's tables and files: probabilities, Integrated
Gradients' completeness, localisation scores side by side, and the maps as .npy and CSV.
No streamlit here.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from app.attribution_figures import as_array, class_name
from app.i18n import _

if TYPE_CHECKING:  # only their fields are read
    from core.attribution import AttributionResult
    from core.attribution_quality import LocalisationRow


def top_k(probabilities, classes: Sequence[str], k: int = 3) -> str:
    """'circle 92% · square 6% · ring 1%' for one image's probabilities."""
    p = as_array(probabilities).reshape(-1)
    order = np.argsort(-p, kind="stable")[:k]
    return " · ".join(f"{class_name(classes, int(c))} {p[c]:.0%}" for c in order)


def probability_rows(
    results_by_net: Mapping[str, AttributionResult],
    classes: Sequence[str],
    *,
    labels=None,
    indices=None,
) -> list[dict]:
    """One row per image: its true class, and per network the top 3 predicted classes
    and the class the map explains."""
    first = next(iter(results_by_net.values()))
    n = len(first.probabilities)
    indices = np.arange(n) if indices is None else as_array(indices).reshape(-1)
    rows = []
    for i in range(n):
        row = {_("image"): int(indices[i])}
        if labels is not None:
            row[_("true class")] = class_name(classes, int(as_array(labels).reshape(-1)[i]))
        for net, r in results_by_net.items():
            row[_("{net} · top 3").format(net=net)] = top_k(r.probabilities[i], classes)
            row[_("{net} · map explains").format(net=net)] = class_name(
                classes, int(as_array(r.targets)[i])
            )
        rows.append(row)
    return rows


def delta_rows(results_by_net: Mapping[str, AttributionResult], *, indices=None) -> list[dict]:
    """Integrated Gradients' completeness per image and network: the score change
    f(x) - f(baseline) that the map's sum should equal, the gap (Captum's delta), and the
    gap as a share of the change, which Sundararajan et al. (2017, sec. 3) want within 5%.
    Empty when no result has a delta."""
    with_delta = {net: r for net, r in results_by_net.items() if r.delta is not None}
    if not with_delta:
        return []
    n = len(next(iter(with_delta.values())).delta)
    indices = np.arange(n) if indices is None else as_array(indices).reshape(-1)
    rows = []
    for i in range(n):
        row = {_("image"): int(indices[i])}
        for net, r in with_delta.items():
            delta = float(as_array(r.delta)[i])
            change = (
                float(as_array(r.raw[i]).astype(np.float64).sum()) - delta
            )  # delta = sum - change
            row[f"{net} · f(x) − f(baseline)"] = round(change, 4)
            row[_("{net} · delta").format(net=net)] = float(f"{delta:.3g}")
            row[_("{net} · gap %").format(net=net)] = round(relative_gap(delta, change) * 100, 1)
        rows.append(row)
    return rows


def relative_gap(delta: float, change: float) -> float:
    """|delta| as a share of |change| (0 when both vanish, inf when only the change does)."""
    if abs(change) < 1e-12:
        return 0.0 if abs(delta) < 1e-12 else math.inf
    return abs(delta) / abs(change)


def localisation_rows(rows: Sequence[LocalisationRow]) -> list[dict]:
    """One row per method; per network the share of positive attribution on the object
    and the pointing-game hit rate (in %), side by side; and the chance level (the
    objects' share of the pixels), which a map spread evenly would score."""
    models = list(dict.fromkeys(r.model for r in rows))
    out: dict[str, dict] = {}
    for r in rows:
        out.setdefault(r.method, {})[r.model] = r.score
    table = []
    for method, scores in out.items():
        row = {_("method"): method}
        for column, field in ((_("on object %"), "share_inside"), (_("pointing %"), "hit_rate")):
            for model in models:  # the networks side by side under each measure
                score = scores.get(model)
                row[f"{column} · {model}"] = _percent(getattr(score, field, math.nan))
        row[_("chance %")] = _percent(next(iter(scores.values())).mask_area)
        table.append(row)
    return table


def _percent(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(100 * value, 1)


# --- files -------------------------------------------------------------------------------


def maps_npy(result: AttributionResult) -> bytes:
    """The maps as drawn, (N, H, W) float32, in NumPy's .npy format."""
    buf = io.BytesIO()
    np.save(buf, as_array(result.maps).astype(np.float32))
    return buf.getvalue()


def maps_csv(
    results_by_net: Mapping[str, AttributionResult], classes: Sequence[str], *, indices=None
) -> str:
    """Every value of every map, one per line: network, image, class explained, row, col."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["network", "image", "class_explained", "row", "col", "value"])
    for net, r in results_by_net.items():
        maps = as_array(r.maps).astype(np.float32)  # (N, H, W)
        n, h, w = maps.shape
        idx = np.arange(n) if indices is None else as_array(indices).reshape(-1)
        rows, cols = np.divmod(np.arange(h * w), w)
        for i in range(n):
            name = class_name(classes, int(as_array(r.targets)[i]))
            out.writerows(
                (net, int(idx[i]), name, int(y), int(x), f"{v:.6g}")
                for y, x, v in zip(rows, cols, maps[i].reshape(-1), strict=True)
            )
    return buf.getvalue()
