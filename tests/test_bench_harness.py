"""The bench harness (``bench/_harness.py``, ``bench/__main__.py``) and the naive baseline."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import trio

import bench.__main__ as bench_main
from bench import _naive, runtime
from bench._harness import (
    FIGURE_KEYS,
    Deadline,
    Figure,
    LatencyRecorder,
    Progress,
    abest_of,
    best_of,
    build_report,
    measure_rate,
    render_table,
    run_in_fresh_process,
)

REPO_ROOT = Path(bench_main.__file__).resolve().parent.parent
BENCH_MD_FIGURE_KEYS = [
    "name",
    "value",
    "unit",
    "baseline",
    "baseline_name",
    "ratio",
    "target",
    "met",
]


def rate(value: float, baseline: float | None = None, target_ratio: float | None = None) -> Figure:
    return Figure(
        name="tell_throughput",
        value=value,
        unit="msg/s",
        better="higher",
        baseline=baseline,
        baseline_name=None if baseline is None else "naive",
        target_ratio=target_ratio,
        target=None if target_ratio is None else f">= {target_ratio}x baseline",
    )


def cost(value: float, baseline: float | None = None, target_ratio: float | None = None) -> Figure:
    return Figure(
        name="idle_activation_bytes",
        value=value,
        unit="bytes",
        better="lower",
        baseline=baseline,
        baseline_name=None if baseline is None else "naive",
        target_ratio=target_ratio,
        target=None if target_ratio is None else "<= 1/6 of baseline",
    )


# --- Figure ---------------------------------------------------------------------------------


def test_ratio_of_a_rate_is_value_over_baseline() -> None:
    fig = rate(300.0, baseline=100.0, target_ratio=3.0)
    assert fig.ratio == pytest.approx(3.0)
    assert fig.met is True
    assert rate(299.0, baseline=100.0, target_ratio=3.0).met is False


def test_ratio_of_a_cost_is_baseline_over_value() -> None:
    fig = cost(1000.0, baseline=6000.0, target_ratio=6.0)
    assert fig.ratio == pytest.approx(6.0)
    assert fig.met is True
    worse = cost(2000.0, baseline=6000.0, target_ratio=6.0)
    assert worse.ratio == pytest.approx(3.0)
    assert worse.met is False
    assert cost(12000.0, baseline=6000.0).ratio == pytest.approx(0.5)  # below 1 = worse


def test_without_baseline_ratio_and_met_are_none() -> None:
    fig = rate(100.0, target_ratio=3.0)
    assert fig.ratio is None
    assert fig.met is None
    assert fig.to_json()["baseline"] is None
    assert fig.to_json()["ratio"] is None


def test_without_target_met_is_none() -> None:
    fig = cost(10.0, baseline=20.0)
    assert fig.ratio == pytest.approx(2.0)
    assert fig.met is None


def test_zero_divisor_gives_no_ratio() -> None:
    assert rate(100.0, baseline=0.0, target_ratio=3.0).ratio is None
    assert rate(100.0, baseline=0.0, target_ratio=3.0).met is None
    assert cost(0.0, baseline=100.0).ratio is None


def test_figure_rejects_unknown_direction_and_non_finite_values() -> None:
    with pytest.raises(ValueError, match="better must be 'higher'"):
        Figure(name="x", value=1.0, unit="u", better="up")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="value must be a finite number, got nan"):
        Figure(name="x", value=float("nan"), unit="u", better="higher")
    with pytest.raises(ValueError, match="baseline must be a finite number"):
        Figure(name="x", value=1.0, unit="u", better="higher", baseline=float("inf"))


def test_figure_json_has_exactly_bench_md_keys() -> None:
    fig = rate(412000.0, baseline=136000.0, target_ratio=3.0)
    doc = fig.to_json()
    assert list(doc) == BENCH_MD_FIGURE_KEYS
    assert list(FIGURE_KEYS) == BENCH_MD_FIGURE_KEYS
    assert doc == {
        "name": "tell_throughput",
        "value": 412000.0,
        "unit": "msg/s",
        "baseline": 136000.0,
        "baseline_name": "naive",
        "ratio": 3.029,
        "target": ">= 3.0x baseline",
        "met": True,
    }
    assert json.loads(json.dumps(doc)) == doc


def test_report_has_bench_md_shape() -> None:
    import datetime

    when = datetime.datetime(2026, 11, 22, 10, 0, tzinfo=datetime.UTC)
    doc = build_report("runtime", [rate(2.0, baseline=1.0)], when=when, extra_versions={"x": "1"})
    assert list(doc) == ["bench", "when", "machine", "versions", "figures"]
    assert doc["bench"] == "runtime"
    assert doc["when"] == "2026-11-22T10:00:00Z"
    assert set(doc["machine"]) == {"cpus", "python", "platform"}
    assert doc["machine"]["cpus"] >= 1
    assert doc["versions"]["trio"] == trio.__version__
    assert doc["versions"]["tektree"]  # the installed version, or "0+unknown"
    assert doc["versions"]["x"] == "1"
    assert [list(f) for f in doc["figures"]] == [BENCH_MD_FIGURE_KEYS]
    with pytest.raises(ValueError, match="timezone-aware"):
        build_report("runtime", [], when=datetime.datetime(2026, 1, 1))


def test_table_renders_every_figure_and_says_which_way_is_better() -> None:
    table = render_table(
        [rate(412000.0, baseline=136000.0, target_ratio=3.0), cost(5000.0, 4600.0, 6.0)]
    )
    header, rule, first, second = table.splitlines()
    assert "(ratio > 1 = better)" in header
    for column in ("name", "value", "unit", "baseline", "target", "met"):
        assert column in header
    assert set(rule) <= {"-", " "}
    assert first.split()[:4] == ["tell_throughput", "412,000", "msg/s", "136,000"]
    assert "3.03x" in first and first.endswith("yes")
    assert "0.92x" in second and second.endswith("NO")


def test_table_shows_dashes_without_baseline() -> None:
    line = render_table([rate(1.5)]).splitlines()[2]
    assert line.split() == ["tell_throughput", "1.5", "msg/s", "-", "-", "-", "-"]


# --- Progress, latency, timing helpers -----------------------------------------------------


def test_progress_rewrites_one_line_on_a_tty() -> None:
    out = io.StringIO()
    with Progress("runtime", stream=out, tty=True) as progress:
        progress.step("a longer first step")
        progress.step("b")
        assert "\n" not in out.getvalue()
    text = out.getvalue()
    assert text.count("\r") == 2
    assert text.endswith("\n")
    last = text.rstrip("\n").split("\r")[-1]
    assert "runtime: b" in last
    assert len(last) == len(text.split("\r")[1])  # padded over the longer previous line


def test_progress_writes_plain_lines_otherwise() -> None:
    out = io.StringIO()
    with Progress(stream=out, tty=False) as progress:
        progress.step("one")
        progress.step("two")
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert [line.split("] ", 1)[1] for line in lines] == ["one", "two"]


def test_latency_recorder_percentiles_in_microseconds() -> None:
    recorder = LatencyRecorder()
    for us in range(1, 101):
        recorder.record_us(us)
    recorder.record_ns(15_000)
    assert recorder.count == 101
    assert recorder.percentile_us(50) == pytest.approx(50, abs=1)
    assert recorder.percentile_us(99) == pytest.approx(99, abs=1)
    assert recorder.percentile_us(100) == 100
    recorder.reset()
    assert recorder.count == 0
    recorder.record_ns(200)  # below 1 µs: clamped to the histogram's floor, still counted
    recorder.record_us(10**9)  # past 60 s: clamped to the ceiling
    assert recorder.count == 2
    assert recorder.percentile_us(0) == 1
    assert recorder.percentile_us(100) >= 59_000_000
    with pytest.raises(ValueError, match=r"within 0\.\.100"):
        recorder.percentile_us(101)


def test_measure_rate() -> None:
    assert measure_rate(100, 2.0) == 50.0
    with pytest.raises(ValueError, match="seconds must be > 0"):
        measure_rate(100, 0.0)


def test_deadline_chunks_bound_count_and_time() -> None:
    assert list(Deadline(60).chunks(2500, chunk=1000)) == [1000, 1000, 500]
    expired = Deadline(1e-9)
    assert expired.expired()
    assert list(expired.chunks(10_000)) == []
    assert expired.remaining() == 0.0
    with pytest.raises(ValueError, match="seconds must be > 0"):
        Deadline(0)


def test_best_of_keeps_the_best_by_direction() -> None:
    def source() -> Iterator[float]:
        yield from (2.0, 5.0, 1.0)

    samples = source()
    assert best_of(3, lambda: next(samples)) == 5.0
    samples = source()
    assert best_of(3, lambda: next(samples), better="lower") == 1.0
    pairs = iter([(1.0, "a"), (3.0, "b")])
    assert best_of(2, lambda: next(pairs), key=lambda p: p[0]) == (3.0, "b")
    with pytest.raises(TypeError, match="needs key="):
        best_of(1, lambda: "text")


async def test_abest_of_runs_n_times() -> None:
    calls: list[int] = []

    async def measure() -> float:
        calls.append(1)
        await trio.lowlevel.checkpoint()
        return float(len(calls))

    assert await abest_of(3, measure, better="lower") == 1.0
    assert len(calls) == 3


# --- python -m bench ------------------------------------------------------------------------


def test_unknown_bench_exits_2_listing_the_benches() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "nosuch"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "unknown bench 'nosuch'" in proc.stderr
    assert "runtime" in proc.stderr
    assert "_naive" not in proc.stderr and "_harness" not in proc.stderr


def test_available_lists_only_public_modules() -> None:
    names = bench_main.available()
    assert "runtime" in names
    assert all(not name.startswith("_") for name in names)


def test_main_runs_a_sync_bench_and_writes_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = types.ModuleType("bench.fakesync")
    seen: list[bool] = []

    def run(quick: bool, progress: Progress) -> list[Figure]:
        seen.append(quick)
        progress.step("measuring")
        return [rate(300.0, baseline=100.0, target_ratio=3.0)]

    module.run = run  # type: ignore[attr-defined]
    module.versions = lambda: {"redis-server": "7.2.4"}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bench.fakesync", module)
    monkeypatch.setattr(bench_main, "available", lambda: ["fakesync"])
    monkeypatch.setattr(bench_main, "RESULTS_DIR", tmp_path / "results")

    assert bench_main.main(["fakesync", "--quick"]) == 0
    assert seen == [True]
    doc = json.loads((tmp_path / "results" / "fakesync.json").read_text())
    assert doc["bench"] == "fakesync"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["when"])
    assert doc["versions"]["redis-server"] == "7.2.4"
    assert doc["figures"][0]["met"] is True
    out = capsys.readouterr()
    assert "tell_throughput" in out.out
    assert "measuring" in out.err


@pytest.mark.slow
def test_runtime_bench_produces_its_seven_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The subject is measured with the baseline's own functions: the contract, not the numbers.
    monkeypatch.setattr(runtime, "_SUBJECT", attrs.evolve(runtime._BASELINE, label="subject"))
    tiny = runtime.Counts(
        tell=500, ask=100, fanout_actors=20, fanout_per_actor=5, density=500, rounds=1
    )
    monkeypatch.setattr(runtime, "QUICK", tiny)
    monkeypatch.setattr(bench_main, "RESULTS_DIR", tmp_path)

    assert bench_main.main(["runtime", "--quick"]) == 0
    doc = json.loads((tmp_path / "runtime.json").read_text())
    figures = {f["name"]: f for f in doc["figures"]}
    assert list(figures) == [
        "tell_throughput",
        "ask_throughput",
        "ask_p50_us",
        "ask_p99_us",
        "fanout_throughput",
        "idle_activation_bytes",
        "activation_us",
    ]
    assert {name: f["target"] for name, f in figures.items() if f["target"]} == {
        "tell_throughput": ">= 3x baseline",
        "ask_throughput": ">= 2x baseline",
        "fanout_throughput": ">= 3x baseline",
        "idle_activation_bytes": "<= 1/6 of baseline",
    }
    for fig in figures.values():
        assert fig["value"] > 0 and fig["baseline"] > 0
        assert fig["baseline_name"] == runtime.BASELINE_NAME


# --- the naive baseline ---------------------------------------------------------------------


async def test_naive_tell_throughput_is_positive() -> None:
    with trio.fail_after(10):
        assert await _naive.tell_throughput(2_000) > 0


async def test_naive_ask_reports_rate_and_latencies() -> None:
    with trio.fail_after(10):
        per_second, p50, p99 = await _naive.ask(200)
    assert per_second > 0
    assert 1 <= p50 <= p99


async def test_naive_fanout_is_positive() -> None:
    with trio.fail_after(10):
        assert await _naive.fanout(actors=50, per_actor=4) > 0


async def test_naive_tell_stops_at_its_deadline() -> None:
    with trio.fail_after(20):
        per_second = await _naive.tell_throughput(10**9, seconds=0.2)
    assert per_second > 0


async def test_naive_density_in_a_fresh_process_is_positive() -> None:
    with trio.fail_after(60):
        per_actor, activation_us = await run_in_fresh_process("bench._naive", "density", 2_000)
    assert per_actor > 0
    assert activation_us > 0


async def test_fresh_process_failure_names_the_call() -> None:
    with trio.fail_after(60), pytest.raises(RuntimeError, match=r"bench\._naive\.nosuch"):
        await run_in_fresh_process("bench._naive", "nosuch", 1)
