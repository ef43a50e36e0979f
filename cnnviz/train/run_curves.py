"""The curves the Train tab draws: each run's points (thinned as they grow), the long-format frames the plots take and
when the plots must be rebuilt (no gradio here)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# Every update resends every point (LinePlot has no append), so the point count is the reporting cost:
# about 2.5 ms of server CPU per 1,000 points at 4 updates/s. Keep the current run detailed, earlier ones coarse.
MAX_POINTS = 300  # train points of the current run; thinned by half when reached
MAX_POINTS_EARLIER = 120  # train points kept of each earlier run
MAX_RUNS = 5  # curves of earlier runs kept for comparison
# (test, train) colour per run: a strong and a light shade of one hue (matplotlib's tab20 pairs)
PALETTE = [("#1f77b4", "#aec7e8"), ("#ff7f0e", "#ffbb78"), ("#2ca02c", "#98df8a"), ("#d62728", "#ff9896"),
           ("#9467bd", "#c5b0d5"), ("#8c564b", "#c49c94")]


@dataclass
class RunCurves:
    """Points of one run: x is the epoch as a float (comparable across batch sizes)."""

    number: int
    description: str
    epochs: int
    train: list[tuple[float, float, float]] = field(default_factory=list)  # (epoch, loss, acc)
    test: list[tuple[float, float, float]] = field(default_factory=list)

    def add_train(self, point: tuple[float, float, float]) -> None:
        """Add one (epoch, loss, acc) point, thinning when there are too many."""
        self.train.append(point)
        if len(self.train) > MAX_POINTS:
            del self.train[::2]  # halve the density; keeps the shape of the curve

    def thin(self, limit: int) -> None:
        """Keep about `limit` train points, evenly spread (the last one stays)."""
        step = -(-len(self.train) // limit)
        if step > 1:
            self.train = self.train[::-1][::step][::-1]

    @property
    def label(self) -> str:
        """'run N', the prefix of this run's series names."""
        return f"run {self.number}"

    def colors(self) -> dict[str, str]:
        """Series name -> colour: one hue per run, light for train, strong for test."""
        test, train = PALETTE[(self.number - 1) % len(PALETTE)]
        return {f"{self.label} train": train, f"{self.label} test": test}


@dataclass(frozen=True)
class PlotMeta:
    """What the curves' axes and legend need besides the points."""

    series: tuple[str, ...]
    colors: dict[str, str]
    x_max: float


class PlotFeed:
    """Decides when a plot needs its properties (colours, x range) re-sent, not just new points.

    Gradio's LinePlot fixes its colour domain when it builds the chart and only swaps the data afterwards, so new
    series stay invisible until a property change rebuilds it. The rebuild reads the data of the previous update,
    so properties are sent one update *after* new series first appear in the data.
    """

    def __init__(self) -> None:
        self.previous: tuple[str, ...] | None = None
        self.built: tuple[str, ...] | None = None

    def rebuild_due(self, series: tuple[str, ...]) -> bool:
        """True when this update should carry the plot's properties."""
        due = series == self.previous and series != self.built
        if due:
            self.built = series
        self.previous = series
        return due


def _frame(rows: list[tuple[float, float, str]]) -> pd.DataFrame:
    """Typed long-format frame: an empty frame must still say 'numbers', or the plot fixes its axes as categories."""
    x, y, series = zip(*rows) if rows else ((), (), ())
    return pd.DataFrame({"epoch": np.asarray(x, dtype=np.float64), "value": np.asarray(y, dtype=np.float64),
                         "series": pd.array(series, dtype="str")})


def plot_frames(runs: list[RunCurves]) -> tuple[pd.DataFrame, pd.DataFrame, PlotMeta]:
    """Long-format (epoch, value, series) frames for the loss and the accuracy plot, and their legend (the caller holds
    the lock of the run that is still adding points)."""
    loss, acc, colors = [], [], {}
    for run in runs:
        colors.update(run.colors())
        for split, points in (("train", run.train), ("test", run.test)):
            name = f"{run.label} {split}"
            # A point without a value: every series is in the data from the start (see PlotFeed).
            # Rounded: a point's JSON is a third as long, and 4 digits are more than a plot shows.
            loss += [(0.0, math.nan, name)] + [(round(x, 3), round(lo, 4), name) for x, lo, _ in points]
            acc += [(0.0, math.nan, name)] + [(round(x, 3), round(a, 4), name) for x, _, a in points]
    x_max = float(max((r.epochs for r in runs), default=1))
    return _frame(loss), _frame(acc), PlotMeta(tuple(colors), colors, x_max)


__all__ = ["MAX_POINTS", "MAX_POINTS_EARLIER", "MAX_RUNS", "PlotFeed", "PlotMeta", "RunCurves", "plot_frames"]
