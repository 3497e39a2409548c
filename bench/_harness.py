"""The pieces every benchmark shares: figures, the results table, progress, timing and memory.

The convention lives in BENCH.md: every benchmark measures its own baseline in the same run and
reports the ratio, a ratio above 1 always meaning "better than the baseline".
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import math
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TextIO, TypeVar

import attrs
import psutil  # type: ignore[import-untyped, unused-ignore]  # no stubs in the venv
import trio
from hdrh.histogram import HdrHistogram

__all__ = [
    "Deadline",
    "Figure",
    "LatencyRecorder",
    "Progress",
    "abest_of",
    "best_of",
    "build_report",
    "measure_rate",
    "render_table",
    "rss_bytes",
    "run_in_fresh_process",
]

T = TypeVar("T")
Better = Literal["higher", "lower"]

#: The JSON keys of one figure, in BENCH.md's order.
FIGURE_KEYS = (
    "name",
    "value",
    "unit",
    "baseline",
    "baseline_name",
    "ratio",
    "target",
    "met",
)

_REPO_ROOT = Path(__file__).resolve().parent.parent


def _check_better(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in ("higher", "lower"):
        raise ValueError(
            f"{attribute.name} must be 'higher' (rates) or 'lower' (latencies, bytes), "
            f"got {value!r}"
        )


def _check_finite(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be a finite number, got {value!r}")


@attrs.frozen(kw_only=True)
class Figure:
    """One measured number beside its baseline, and whether it meets its target.

    ``better`` says which way is good: ``"higher"`` for rates, ``"lower"`` for costs (latency,
    bytes). ``target_ratio`` is the ratio that meets the target, e.g. ``3.0`` for ">= 3x baseline"
    on a rate or ``6.0`` for "<= 1/6 of the baseline's memory" on a cost.
    """

    name: str
    value: float = attrs.field(validator=_check_finite)
    unit: str
    better: Better = attrs.field(validator=_check_better)
    baseline: float | None = attrs.field(default=None, validator=_check_finite)
    baseline_name: str | None = None
    target_ratio: float | None = attrs.field(default=None, validator=_check_finite)
    target: str | None = None

    @property
    def ratio(self) -> float | None:
        """value / baseline for rates, baseline / value for costs; above 1 means better.

        None without a baseline, or when the divisor is zero (the ratio has no finite value).
        """
        if self.baseline is None:
            return None
        num, den = (
            (self.value, self.baseline) if self.better == "higher" else (self.baseline, self.value)
        )
        if den == 0:
            return None
        return num / den

    @property
    def met(self) -> bool | None:
        """Whether the ratio reaches ``target_ratio``.

        None when there is no target, or no ratio to judge it by (no baseline, zero divisor).
        """
        ratio = self.ratio
        if self.target_ratio is None or ratio is None:
            return None
        return ratio >= self.target_ratio

    def to_json(self) -> dict[str, Any]:
        """The figure as BENCH.md writes it (keys in ``FIGURE_KEYS`` order)."""
        ratio = self.ratio
        return {
            "name": self.name,
            "value": float(self.value),
            "unit": self.unit,
            "baseline": None if self.baseline is None else float(self.baseline),
            "baseline_name": self.baseline_name,
            "ratio": None if ratio is None else round(ratio, 3),
            "target": self.target,
            "met": self.met,
        }


def _fmt_number(value: float | None) -> str:
    if value is None:
        return "-"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.1f}"
    return f"{value:.3g}"


def render_table(figures: Sequence[Figure]) -> str:
    """A plain-text table of the figures, one line each, for a terminal or a log."""
    headers = ("name", "value", "unit", "baseline", "ratio x (ratio > 1 = better)", "target", "met")
    rows: list[tuple[str, ...]] = []
    for fig in figures:
        ratio = fig.ratio
        met = fig.met
        rows.append(
            (
                fig.name,
                _fmt_number(fig.value),
                fig.unit,
                _fmt_number(fig.baseline),
                "-" if ratio is None else f"{ratio:.2f}x",
                fig.target or "-",
                "-" if met is None else ("yes" if met else "NO"),
            )
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    numeric = {1, 3, 4}  # right-aligned columns

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(r) for r in rows)
    return "\n".join(out)


class Progress:
    """A progress line: rewritten in place with ``\\r`` on a terminal, plain lines otherwise.

    Use as a context manager; ``step(text)`` replaces the current line. Writes to stderr by
    default so the table on stdout stays clean.
    """

    def __init__(
        self, prefix: str = "", *, stream: TextIO | None = None, tty: bool | None = None
    ) -> None:
        self._stream = sys.stderr if stream is None else stream
        self._tty = self._stream.isatty() if tty is None else tty
        self._prefix = prefix
        self._start = time.perf_counter()
        self._width = 0

    @property
    def elapsed(self) -> float:
        """Seconds since the progress started."""
        return time.perf_counter() - self._start

    def step(self, text: str) -> None:
        """Show ``text`` as the current state of the run."""
        head = f"[{self.elapsed:6.1f}s] "
        if self._prefix:
            head += f"{self._prefix}: "
        msg = head + text
        if self._tty:
            pad = max(0, self._width - len(msg))
            self._stream.write("\r" + msg + " " * pad)
            self._width = len(msg)
        else:
            self._stream.write(msg + "\n")
        self._stream.flush()

    def close(self) -> None:
        """End the line, so what follows starts on a fresh one."""
        if self._tty and self._width:
            self._stream.write("\n")
            self._stream.flush()
            self._width = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class LatencyRecorder:
    """An HDR histogram of latencies in whole microseconds, 1 µs to 60 s, 3 significant digits.

    Values outside the range are clamped to it (and still counted), never dropped.
    """

    LOWEST_US = 1
    HIGHEST_US = 60_000_000

    def __init__(self) -> None:
        self._hist = HdrHistogram(self.LOWEST_US, self.HIGHEST_US, 3)

    def record_us(self, value: float) -> None:
        """Record one latency in microseconds."""
        v = min(max(round(value), self.LOWEST_US), self.HIGHEST_US)
        self._hist.record_value(v)

    def record_ns(self, value: int) -> None:
        """Record one latency in nanoseconds (as from ``time.perf_counter_ns``)."""
        self.record_us(value / 1000)

    def percentile_us(self, percentile: float) -> float:
        """The latency at ``percentile`` (0-100) in microseconds; 0.0 when nothing is recorded."""
        if not 0 <= percentile <= 100:
            raise ValueError(f"percentile must be within 0..100, got {percentile!r}")
        return float(self._hist.get_value_at_percentile(percentile))

    @property
    def count(self) -> int:
        """How many latencies were recorded."""
        return int(self._hist.get_total_count())

    def reset(self) -> None:
        """Forget every recorded latency."""
        self._hist.reset()


def rss_bytes() -> int:
    """The resident set size of this process, in bytes."""
    return int(psutil.Process().memory_info().rss)


def measure_rate(count: int, seconds: float) -> float:
    """``count / seconds``, refusing a non-positive duration rather than returning infinity."""
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0 to compute a rate, got {seconds!r}")
    return count / seconds


class Deadline:
    """A wall-clock budget (``time.perf_counter``) to bound a load loop in time.

    Every load loop is bounded in count AND time: iterate ``deadline.chunks(n)``, which yields
    batch sizes summing to at most ``n`` and stops early once the deadline passes, so the check
    costs one clock read per batch, not per message.
    """

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {seconds!r}")
        self.seconds = seconds
        self.at = time.perf_counter() + seconds

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.at - time.perf_counter())

    def expired(self) -> bool:
        """Whether the budget is spent."""
        return time.perf_counter() >= self.at

    def chunks(self, count: int, chunk: int = 1024) -> Iterator[int]:
        """Yield batch sizes summing to ``count``, stopping early when the deadline passes."""
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk!r}")
        done = 0
        while done < count and not self.expired():
            size = min(chunk, count - done)
            done += size
            yield size


def _is_better(candidate: float, best: float, better: Better) -> bool:
    return candidate > best if better == "higher" else candidate < best


def best_of(
    n: int,
    fn: Callable[[], T],
    *,
    key: Callable[[T], float] | None = None,
    better: Better = "higher",
) -> T:
    """Run ``fn`` ``n`` times and keep the best result (by ``key``, default the result itself).

    These machines are noisy: the best of a few runs is the most repeatable figure. To compare a
    baseline with a subject, interleave them (baseline, subject, baseline, subject) and keep the
    best of each, e.g. with ``abest_of`` over both or by calling this once per round.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    score = key if key is not None else _identity_score
    best = fn()
    best_score = score(best)
    for _ in range(n - 1):
        result = fn()
        result_score = score(result)
        if _is_better(result_score, best_score, better):
            best, best_score = result, result_score
    return best


async def abest_of(
    n: int,
    fn: Callable[[], Awaitable[T]],
    *,
    key: Callable[[T], float] | None = None,
    better: Better = "higher",
) -> T:
    """``best_of`` for an async measurement."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    score = key if key is not None else _identity_score
    best = await fn()
    best_score = score(best)
    for _ in range(n - 1):
        result = await fn()
        result_score = score(result)
        if _is_better(result_score, best_score, better):
            best, best_score = result, result_score
    return best


def _identity_score(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    raise TypeError(f"best_of needs key= to score a {type(value).__name__} result, got {value!r}")


_CHILD_CODE = """\
import importlib, json, sys, trio
mod = importlib.import_module(sys.argv[1])
fn = getattr(mod, sys.argv[2])
args = json.loads(sys.argv[3])
print(json.dumps(trio.run(fn, *args)))
"""


async def run_in_fresh_process(
    module: str, func: str, *args: Any, kill_after_seconds: float = 60.0
) -> Any:
    """Run ``trio.run(module.func, *args)`` in a fresh interpreter; return its JSON result.

    For memory measurements (RSS deltas) that earlier allocations in this process would pollute.
    The child prints the result as JSON on the last line of its stdout. A child that fails or
    outlives ``kill_after_seconds`` raises ``RuntimeError`` naming the call and its stderr.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(_REPO_ROOT), env.get("PYTHONPATH", "")) if p
    )
    cmd = [sys.executable, "-c", _CHILD_CODE, module, func, json.dumps(list(args))]
    call = f"{module}.{func}{tuple(args)!r}"
    with trio.move_on_after(kill_after_seconds) as scope:
        proc = await trio.run_process(
            cmd,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            cwd=str(_REPO_ROOT),
            env=env,
        )
    if scope.cancelled_caught:
        raise RuntimeError(
            f"{call} in a fresh process took longer than {kill_after_seconds}s; it was killed"
        )
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace")[-2000:]
        raise RuntimeError(f"{call} in a fresh process exited {proc.returncode}:\n{tail}")
    lines = proc.stdout.decode().strip().splitlines()
    if not lines:
        raise RuntimeError(f"{call} in a fresh process printed no result")
    return json.loads(lines[-1])


def _tektree_version() -> str:
    try:
        return importlib.metadata.version("tektree")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def build_report(
    bench: str,
    figures: Sequence[Figure],
    *,
    when: datetime.datetime,
    extra_versions: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The results document of one run, in BENCH.md's format."""
    if when.tzinfo is None:
        raise ValueError(f"when must be timezone-aware (UTC), got naive {when!r}")
    versions = {"tektree": _tektree_version(), "trio": trio.__version__}
    versions.update(extra_versions or {})
    return {
        "bench": bench,
        "when": when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "versions": versions,
        "figures": [fig.to_json() for fig in figures],
    }
