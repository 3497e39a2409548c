"""PNG plots of load runs (matplotlib, the ``bench`` extra): latency over time, percentile curves.

- :func:`plot_latency_over_time`: one panel per run, each timed request as a dot at its start
  (scheduled, for the open model) against its latency, log scale, one colour per operation: a
  stall shows as a ramp of requests that waited behind it.
- :func:`plot_percentiles`: the latency at each percentile, one line per run and operation, on
  the usual HDR axis (``1 / (1 - q)``, log), so p99, p99.9 and the max stand apart; an
  operation's phases (see :func:`bench._load.mark`) dashed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import matplotlib

matplotlib.use("Agg")  # files only: no display, whatever the environment says

import matplotlib.pyplot as plt

from bench._harness import LatencyRecorder
from bench._load import LoadResult

__all__ = ["percentile_curve", "plot_latency_over_time", "plot_percentiles"]

#: Percentiles of the curve: dense up to 99.999.
_CURVE: Final[tuple[float, ...]] = (*(100 * (1 - 10 ** (-k / 8)) for k in range(41)), 100.0)
_TICKS: Final = ((0.0, "0"), (90.0, "90"), (99.0, "99"), (99.9, "99.9"), (99.99, "99.99"),
                 (99.999, "99.999"))


def _axis(q: float) -> float:
    """The HDR percentile axis: 1 / (1 - q) (q in percent, capped below 100)."""
    return 1.0 / max(1e-6, 1.0 - min(q, 99.9999) / 100.0)


def percentile_curve(recorder: LatencyRecorder) -> list[tuple[float, float]]:
    """(percentile, latency ms) points of ``recorder``, for the percentile plot."""
    if recorder.count == 0:
        return []
    return [(q, recorder.percentile_us(q) / 1000) for q in _CURVE]


def plot_latency_over_time(path: Path, runs: Sequence[LoadResult], *, title: str) -> Path:
    """One panel per run of ``runs``; written to ``path`` (PNG)."""
    height = max(2.6, 2.4 * len(runs))
    figure, axes = plt.subplots(len(runs), 1, figsize=(12, height), squeeze=False)
    for axis, result in zip(axes[:, 0], runs, strict=True):
        for name in result.series.names:
            xs, ys = result.series.points(name)
            axis.scatter(xs, ys, s=3, alpha=0.5, label=f"{name} ({len(xs):,})",
                         rasterized=True, linewidths=0)
        rate = f", {result.target_rate:g}/s offered" if result.target_rate else ""
        axis.set_title(f"{result.name} ({result.model} model{rate})", fontsize=9)
        axis.set_ylabel("latency (ms)")
        if any(result.series.latency_ms):
            axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), markerscale=3)
    axes[-1, 0].set_xlabel("time since the run started (s): scheduled send for the open model")
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_percentiles(path: Path, runs: Sequence[LoadResult], *, title: str) -> Path:
    """The percentile curve of each run's operations; written to ``path`` (PNG)."""
    figure, axis = plt.subplots(figsize=(12, 5.5))
    for result in runs:
        for stats, style in (*((s, "-") for s in result.ops.values()),
                             *((s, "--") for s in result.phases.values())):
            points = percentile_curve(stats.latency)
            if not points:
                continue
            label = f"{result.name}: {stats.name}"
            axis.plot([_axis(q) for q, _ in points], [ms for _, ms in points], style,
                      label=label)
    axis.set_xscale("log")
    axis.set_xticks([_axis(q) for q, _ in _TICKS], [label for _, label in _TICKS])
    axis.set_xlabel("percentile")
    axis.set_ylabel("latency (ms)")
    if axis.get_lines():
        axis.set_yscale("log")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axis.set_title(title, fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
