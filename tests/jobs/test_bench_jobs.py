"""``bench.jobs`` with tiny counts: every figure comes out, and no reminder fired twice."""

from __future__ import annotations

import io

import pytest

from bench import jobs
from bench._harness import Progress

TINY = jobs.Counts(backlog=300, naive_backlog=200, rate=200.0, lateness_seconds=1.0,
                   naive_lateness_seconds=1.0, jobs=200, naive_jobs=100, seconds=20.0)


@pytest.mark.slow
async def test_measure_with_tiny_counts_gives_every_figure() -> None:
    stream = io.StringIO()
    figures = await jobs.measure(TINY, Progress("jobs", stream=stream))
    by_name = {f.name: f for f in figures}
    assert list(by_name) == [
        "reminders_fired_throughput", "reminder_lateness_p50_ms", "reminder_lateness_p99_ms",
        "reminders_fired_twice", "jobs_throughput", "jobs_enqueue_throughput"]
    assert by_name["reminders_fired_twice"].value == 0
    assert by_name["reminders_fired_throughput"].value > 0
    assert by_name["reminders_fired_throughput"].baseline is not None
    assert by_name["reminder_lateness_p99_ms"].baseline is not None
    assert by_name["jobs_throughput"].value > 0
    # Every reminder of every run was delivered: 300 + 200 + 200 + 200.
    assert len(jobs.Tally.fired) == 900
    assert "draining 300 due reminders" in stream.getvalue()
