"""``bench/_report.py`` and ``bench/_report_plots.py``: details, plots and the Markdown summary of
load runs; the ``--url``, ``details`` and ``write_extras`` hooks of ``python -m bench``."""

from __future__ import annotations

import datetime
import json
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import bench.__main__ as bench_main
from actors.rules.tiers import TIER_NAMES, load_tiers
from bench._harness import Figure, Progress, build_report
from bench._load import LoadResult, OpStats
from bench._load_node import SUPERVISOR_TOML, bench_node_config, toml_document
from bench._report import LoadReport, markdown_summary
from bench._report_plots import percentile_curve
from gateway.options import gateway_options
from tektree.config import load_config

WHEN = datetime.datetime(2026, 12, 3, 7, 0, tzinfo=datetime.UTC)


def _run(name: str, *, errors: Mapping[str, int] = {}) -> LoadResult:
    result = LoadResult(name=name, model="open", target_rate=100.0, connections=4,
                        seconds=2.5, window_seconds=2.0, scheduled=200, started=198,
                        ok_in_window=150)
    for k in range(150):
        op = "read" if k % 3 else "write"
        stats = result.stats(op)
        stats.ok += 1
        stats.latency.record_us(1000 + 10 * k)
        result.total.record_us(1000 + 10 * k)
        result.series.add(op, k / 100, (1000 + 10 * k) / 1000)
    result.stats("write").errors.update(errors)
    phase = result.phases["write: POST answered"] = OpStats("write: POST answered")
    phase.ok = 1
    phase.latency.record_us(900)
    result.notes.append("a note of the run")
    return result


def _report() -> LoadReport:
    report = LoadReport(bench="fake")
    report.runs.append(_run("mix at 100/s", errors={"http 500": 45, "timeout": 3}))
    report.figures.append(Figure(name="fake_p99_ms", value=2.5, unit="ms", better="lower",
                                 baseline=1.0, baseline_name="ceiling"))
    report.notes.append("a note of the bench")
    return report


def test_a_run_as_json_adds_up() -> None:
    document = _run("r", errors={"http 500": 45, "timeout": 3}).to_json()
    json.dumps(document)  # plain JSON values only
    assert document["ok"] == 150 and document["failed"] == 48 and document["unsent"] == 2
    assert document["ok"] + document["failed"] + document["unsent"] == document["scheduled"]
    assert document["errors"] == {"http 500": 45, "timeout": 3, "unsent": 2}
    assert document["achieved_rate"] == 75.0 and document["target_rate"] == 100.0
    assert [op["name"] for op in document["operations"]] == ["write", "read"]
    assert document["phases"][0]["name"] == "write: POST answered"
    assert list(document["latency_ms"]) == ["p50", "p95", "p99", "p99.9", "max"]
    assert document["latency_ms"]["max"] == pytest.approx(2.49, rel=1e-2)


def test_the_report_writes_plots_and_a_summary(tmp_path: Path) -> None:
    report = _report()
    document = build_report("fake", report.figures, when=WHEN)
    document["details"] = report.details()
    json.dumps(document)
    paths = report.write(tmp_path / "results", document)
    assert [p.name for p in paths] == ["fake.md", "fake-latency.png", "fake-percentiles.png"]
    for png in paths[1:]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 10_000
    summary = paths[0].read_text()
    assert summary.startswith("# python -m bench fake\n")
    assert "2026-12-03T07:00:00Z" in summary
    assert "| fake_p99_ms | 2.5 | ms | 1 | 0.4 | - | - |" in summary
    assert "| mix at 100/s | open | 100 | 75 | 150 | 48 | 2 |" in summary
    assert "| mix at 100/s | write: POST answered | 1 | 0 |" in summary
    assert "| mix at 100/s | http 500 | 45 |" in summary
    assert "| mix at 100/s | unsent | 2 |" in summary
    assert "- a note of the bench" in summary
    assert "- mix at 100/s: a note of the run" in summary
    assert "![fake-latency.png](fake-latency.png)" in summary


def test_a_summary_without_errors_says_so() -> None:
    run = _run("clean")
    run.started = run.scheduled
    summary = markdown_summary({"bench": "b", "figures": []}, [run], [])
    assert "## Errors\n\nNone." in summary
    assert "## Notes" in summary  # the run's own note


def test_the_percentile_curve_climbs_to_the_max() -> None:
    run = _run("r")
    curve = percentile_curve(run.total)
    assert curve[0][0] == 0.0 and curve[-1][0] == 100.0
    values = [ms for _, ms in curve]
    assert values == sorted(values)
    assert values[-1] == pytest.approx(run.total.percentile_us(100) / 1000)
    assert percentile_curve(LoadResult(name="e", model="open", target_rate=1.0,
                                       connections=1).total) == []


def test_the_bench_node_config_keeps_supervisor_toml_but_its_rate_limits(
    tmp_path: Path,
) -> None:
    path = bench_node_config(tmp_path, gateway={"access_log": True})
    config = load_config(str(path))  # what tektree run will load
    (gateway,) = [c for c in config.supervisor.children
                  if getattr(c, "service", "") == "gateway.service:serve"]
    options = gateway_options(gateway.options)  # type: ignore[attr-defined]
    assert options.rate_limits is True  # the limiter still runs
    assert options.anonymous_rpm() == 60_000_000
    assert options.access_log is True
    catalog = load_tiers(options.tiers_file)
    for tier in TIER_NAMES:
        assert catalog[tier].requests_per_minute == 60_000_000
        assert set(catalog[tier].quotas.values()) == {None}  # unlimited
    shipped = load_config(str(SUPERVISOR_TOML))
    assert [c.name for c in config.supervisor.children] == [
        c.name for c in shipped.supervisor.children]
    with pytest.raises(Exception, match="nosuch"):
        bench_node_config(tmp_path, gateway={"nosuch": 1})


def test_toml_document_round_trips() -> None:
    import tomllib

    data: dict[str, Mapping[str, Any]] = {
        "a": {"s": 'quo"te\\', "n": 3, "f": 0.5, "b": False, "l": [1, "x"],
              "t": {"k": [{"x": 1}]}},
        "b": {},
    }
    assert tomllib.loads(toml_document(data)) == data
    with pytest.raises(TypeError, match="cannot write"):
        toml_document({"a": {"x": object()}})


# --------------------------------------------------------------------------- python -m bench


def _fake_bench(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *, url: bool,
                seen: list[Any]) -> None:
    module = types.ModuleType("bench.fakeload")
    report = _report()

    if url:
        async def run(quick: bool, progress: Progress, url: str | None = None) -> list[Figure]:
            seen.append(url)
            return report.figures
    else:
        async def run(quick: bool, progress: Progress) -> list[Figure]:  # type: ignore[misc]
            seen.append(None)
            return report.figures

    module.run = run  # type: ignore[attr-defined]
    module.details = report.details  # type: ignore[attr-defined]
    module.write_extras = report.write  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bench.fakeload", module)
    monkeypatch.setattr(bench_main, "available", lambda: ["fakeload"])
    monkeypatch.setattr(bench_main, "RESULTS_DIR", tmp_path / "results")


def test_main_passes_url_and_writes_details_and_extras(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[Any] = []
    _fake_bench(monkeypatch, tmp_path, url=True, seen=seen)
    assert bench_main.main(["fakeload", "--url", "http://127.0.0.1:9"]) == 0
    assert bench_main.main(["fakeload"]) == 0
    assert seen == ["http://127.0.0.1:9", None]
    results = tmp_path / "results"
    document = json.loads((results / "fakeload.json").read_text())
    assert list(document) == ["bench", "when", "machine", "versions", "figures", "details"]
    assert document["details"]["runs"][0]["name"] == "mix at 100/s"
    assert (results / "fake.md").exists() and (results / "fake-latency.png").exists()
    assert "wrote " + str(results / "fake.md") in capsys.readouterr().out


def test_main_refuses_url_for_a_bench_that_starts_what_it_measures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[Any] = []
    _fake_bench(monkeypatch, tmp_path, url=False, seen=seen)
    assert bench_main.main(["fakeload", "--url", "http://127.0.0.1:9"]) == 2
    assert seen == []
    assert "does not take --url" in capsys.readouterr().err
