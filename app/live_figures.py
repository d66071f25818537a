"""The live panel's four figures, from chart snapshots (core.telemetry's `chart_snapshot`,
downsampled as steps arrive), each rebuilt only when its own data changed: a poll that
finds no new step, or a new choice of scale, rebuilds nothing it does not have to. Pure;
no streamlit (bench/refresh_cost.py times it as the page uses it).
"""

from __future__ import annotations

from collections.abc import Callable

import plotly.graph_objects as go

from app import figures
from core.telemetry import Snapshot

MAX_POINTS = 300  # training points per arm in the curves
HEAT_POINTS = 200  # columns of the heatmap
CHART_HEIGHT = 440  # loss and gradient charts under the controls fit a 1280x720 screen
NAMES = ("loss", "depth", "acc", "heat")  # the panel's figures, in the order drawn


def data_mark(snapshot: Snapshot) -> tuple:
    """What a figure of this arm's log depends on: its last step, its evaluations and
    events, and its spec (a live skip toggle recolours nothing but changes the family)."""
    last = snapshot.last
    spec = snapshot.meta.get("spec", "")
    return (last.step if last else 0, len(snapshot.evals), len(snapshot.events), spec)


class LiveFigures:
    """One panel's figures, each kept with the mark of the data it was built from."""

    def __init__(self):
        self._built: dict[str, tuple[tuple, go.Figure]] = {}
        self.rebuilt: list[str] = []  # which figures the last `figures` call built anew
        self.drawn: list[go.Figure] = []  # what it returned

    def _get(self, name: str, mark: tuple, build: Callable[[], go.Figure]) -> go.Figure:
        kept = self._built.get(name)
        if kept is not None and kept[0] == mark:
            return kept[1]
        fig = build()
        self._built[name] = (mark, fig)
        self.rebuilt.append(name)
        return fig

    def figures(
        self,
        run_id: str,
        snapshots: dict[str, Snapshot],
        heat: tuple[str, Callable[[], Snapshot]],
        *,
        log_y: bool = False,
    ) -> list[go.Figure]:
        """Loss, gradient norm over depth, accuracy and the heatmap of `heat`'s arm.

        Args:
            run_id: the run (figures of another run are never reused).
            snapshots: arm -> chart snapshot of at most MAX_POINTS steps.
            heat: (arm, a chart snapshot of at most HEAT_POINTS steps, read only if the
                heatmap's mark changed).
        """
        self.rebuilt = []
        marks = (run_id, tuple((arm, data_mark(s)) for arm, s in snapshots.items()))
        heat_arm, heat_snapshot = heat
        h = CHART_HEIGHT
        self.drawn = [
            self._get(
                "loss",
                (marks, log_y),
                lambda: figures.curves_figure(
                    snapshots, "loss", log_y=log_y, max_points=MAX_POINTS, height=h
                ),
            ),
            self._get("depth", marks, lambda: figures.grad_depth_figure(snapshots, height=h)),
            self._get(
                "acc",
                marks,
                lambda: figures.curves_figure(
                    snapshots, "accuracy", max_points=MAX_POINTS, height=h
                ),
            ),
            self._get(
                "heat",
                (run_id, heat_arm, data_mark(snapshots[heat_arm])),
                lambda: figures.grad_heatmap(heat_snapshot(), max_points=HEAT_POINTS),
            ),
        ]
        return self.drawn
