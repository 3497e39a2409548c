"""The outputs of a load bench beside its ``NAME.json``: details, plots and a Markdown summary.

A bench collects its figures and the :class:`~bench._load.LoadResult` of every run behind them
in a :class:`LoadReport`. ``python -m bench`` (see ``bench/__main__.py``) then asks the bench
module for its ``details()`` (added to ``NAME.json`` as ``details``: each run's target and
achieved rate, counts, errors by kind, percentiles per operation and phase, notes) and calls its
``write_extras(results_dir, document)``, which writes, for ``NAME``:

- ``NAME-latency.png``: latency over time, one panel per plotted run;
- ``NAME-percentiles.png``: the percentile curves;
- ``NAME.md``: the figures table, the runs, the errors, the notes, the plots.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from bench._harness import Figure, Progress
from bench._load import PERCENTILES, LoadResult
from bench._load_node import Servers, open_servers

__all__ = ["LastReport", "LoadReport", "http_versions", "markdown_summary", "ms"]


def ms(value_us: float) -> float:
    """Microseconds as milliseconds, rounded to the microsecond."""
    return round(value_us / 1000, 3)


def http_versions() -> Mapping[str, str]:
    """The versions of the HTTP server stack measured."""
    return {"hypercorn": importlib.metadata.version("hypercorn"),
            "quart-trio": importlib.metadata.version("quart-trio")}


@attrs.define
class LoadReport:
    """A bench's figures, the runs behind them, which runs to plot, and notes for the reader."""

    bench: str
    figures: list[Figure] = attrs.Factory(list)
    runs: list[LoadResult] = attrs.Factory(list)
    plotted: list[LoadResult] = attrs.Factory(list)  # empty: every run
    notes: list[str] = attrs.Factory(list)

    def details(self) -> dict[str, Any]:
        return {"runs": [run.to_json() for run in self.runs], "notes": list(self.notes)}

    def write(self, results_dir: Path, document: Mapping[str, Any]) -> list[Path]:
        """Write the plots and the summary into ``results_dir``; the paths written."""
        from bench._report_plots import plot_latency_over_time, plot_percentiles

        results_dir.mkdir(parents=True, exist_ok=True)
        runs = self.plotted or self.runs
        when = document.get("when", "")
        latency = plot_latency_over_time(
            results_dir / f"{self.bench}-latency.png", runs,
            title=f"python -m bench {self.bench}: latency over time ({when})")
        curves = plot_percentiles(
            results_dir / f"{self.bench}-percentiles.png", runs,
            title=f"python -m bench {self.bench}: latency by percentile ({when})")
        summary = results_dir / f"{self.bench}.md"
        summary.write_text(markdown_summary(document, self.runs, self.notes,
                                            images=(latency.name, curves.name)),
                           encoding="utf-8")
        return [summary, latency, curves]


@attrs.define
class LastReport:
    """A load bench's last report, behind the ``details`` and ``write_extras`` hooks that
    ``python -m bench`` calls after ``run`` (bind them as module attributes)."""

    report: LoadReport | None = None

    async def measure(self, measure: Callable[[Servers], Awaitable[LoadReport]],
                      progress: Progress, url: str | None) -> list[Figure]:
        """Start the servers (the node unless ``url`` names one), ``measure``, keep the
        report; its figures."""
        progress.step("starting the ceiling server" + ("" if url else " and a bench node"))
        async with open_servers(url) as servers:
            report = await measure(servers)
        if url is not None:
            report.notes.append(f"node under test: {url} (given with --url)")
        self.report = report
        return report.figures

    def details(self) -> Mapping[str, Any]:
        """The runs behind the figures, for the results' ``details``."""
        return self.report.details() if self.report else {}

    def write_extras(self, results_dir: Path, document: Mapping[str, Any]) -> list[Path]:
        """The plots and the Markdown summary beside the results."""
        return self.report.write(results_dir, document) if self.report else []


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return str(value).replace("|", "\\|")


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out.extend("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows)
    return out


def _latency_cells(percentiles: Mapping[str, float]) -> list[Any]:
    return [percentiles[key] for key, _ in PERCENTILES]


def markdown_summary(document: Mapping[str, Any], runs: Sequence[LoadResult],
                     notes: Sequence[str], *, images: Sequence[str] = ()) -> str:
    """The summary of one results ``document`` (BENCH.md's format) and its runs."""
    bench = document.get("bench", "?")
    machine = document.get("machine", {})
    lines = [f"# python -m bench {bench}", "",
             f"Run {document.get('when', '?')} on {machine.get('cpus', '?')} CPUs, Python "
             f"{machine.get('python', '?')} ({machine.get('platform', '?')}). Absolute numbers "
             "move with the machine's load; each figure's ratio to the baseline measured in "
             "the same run is what compares across runs (ratio > 1 = better).", "",
             "## Figures", ""]
    lines += _table(("name", "value", "unit", "baseline", "ratio", "target", "met"), [
        (f["name"], f["value"], f["unit"], f["baseline"], f["ratio"], f["target"], f["met"])
        for f in document.get("figures", ())])
    percent_headers = tuple(f"{key} ms" for key, _ in PERCENTILES)
    lines += ["", "## Runs", "",
              "Open model: requests sent on a schedule at the offered rate, latency from the "
              "scheduled send time. Closed loop: each connection sends its next request when "
              "the last is answered. Achieved: successes that ended while the load was "
              "offered, a second. Latencies: successful and timed-out requests.", ""]
    lines += _table(("run", "model", "offered /s", "achieved /s", "ok", "failed", "unsent",
                     *percent_headers), [
        (r.name, r.model, r.target_rate, r.achieved_rate, r.ok, r.failed, r.unsent,
         *_latency_cells(r.to_json()["latency_ms"])) for r in runs])
    rows: list[Sequence[Any]] = []
    for r in runs:
        if len(r.ops) > 1 or r.phases:
            for stats in (*r.ops.values(), *r.phases.values()):
                rows.append((r.name, stats.name, stats.ok, stats.failed,
                             *_latency_cells(stats.to_json()["latency_ms"])))
    if rows:
        lines += ["", "### By operation (and phase: time from the start to that step)", ""]
        lines += _table(("run", "operation", "ok", "failed", *percent_headers), rows)
    errors = [(r.name, kind, n) for r in runs for kind, n in sorted(r.errors.items())]
    lines += ["", "## Errors", ""]
    lines += _table(("run", "kind", "count"), errors) if errors else ["None."]
    all_notes = [*notes, *(f"{r.name}: {n}" for r in runs for n in r.notes)]
    if all_notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in all_notes]
    if images:
        lines += ["", "## Plots", ""] + [f"![{name}]({name})" for name in images]
    return "\n".join(lines) + "\n"
