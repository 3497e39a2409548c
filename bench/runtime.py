"""The runtime benchmark: tektree's actors against the naive one-task-per-actor design.

Four measurements, each run baseline then subject, interleaved, keeping the best of each side
(best of 2 rounds by default, 1 with ``--quick``): tell throughput, sequential ask (throughput and
latency), fan-out to 1,000 actors, and the memory and time of activating many idle actors. The
baseline is ``bench._naive``; the subject is ``bench._runtime_subject``. Density runs in a fresh
interpreter per measurement, so RSS deltas are not polluted by what ran before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs

from bench import _naive, _runtime_subject
from bench._harness import Better, Figure, Progress, run_in_fresh_process

__all__ = ["DEFAULT", "QUICK", "Counts", "run"]

BASELINE_NAME = "naive trio task + memory channel"

#: Seconds a fresh density process may take before it is killed.
_DENSITY_TIMEOUT_SECONDS = 60.0


@attrs.frozen(kw_only=True)
class Counts:
    """How much load each measurement sends, and how many interleaved rounds to keep the best of."""

    tell: int
    ask: int
    fanout_actors: int
    fanout_per_actor: int
    density: int
    rounds: int


DEFAULT = Counts(
    tell=200_000, ask=20_000, fanout_actors=1000, fanout_per_actor=100, density=100_000, rounds=2
)
QUICK = Counts(
    tell=20_000, ask=2_000, fanout_actors=1000, fanout_per_actor=10, density=10_000, rounds=1
)


@attrs.frozen(kw_only=True)
class _Side:
    """One implementation under measurement: its label, module and measuring functions."""

    label: str
    module: str  # importable in a fresh interpreter, defines ``density(n)``
    tell_throughput: Callable[[int], Awaitable[float]]
    ask: Callable[[int], Awaitable[tuple[float, float, float]]]
    fanout: Callable[[int, int], Awaitable[float]]


_BASELINE = _Side(
    label="naive",
    module="bench._naive",
    tell_throughput=_naive.tell_throughput,
    ask=_naive.ask,
    fanout=_naive.fanout,
)
_SUBJECT = _Side(
    label="tektree",
    module="bench._runtime_subject",
    tell_throughput=_runtime_subject.tell_throughput,
    ask=_runtime_subject.ask,
    fanout=_runtime_subject.fanout,
)


@attrs.frozen(kw_only=True)
class _Spec:
    name: str
    unit: str
    better: Better
    target_ratio: float | None = None
    target: str | None = None


_SPECS = {
    spec.name: spec
    for spec in (
        _Spec(
            name="tell_throughput", unit="msg/s", better="higher",
            target_ratio=3.0, target=">= 3x baseline",
        ),
        _Spec(
            name="ask_throughput", unit="round trips/s", better="higher",
            target_ratio=2.0, target=">= 2x baseline",
        ),
        _Spec(name="ask_p50_us", unit="us", better="lower"),
        _Spec(name="ask_p99_us", unit="us", better="lower"),
        _Spec(
            name="fanout_throughput", unit="msg/s", better="higher",
            target_ratio=3.0, target=">= 3x baseline",
        ),
        _Spec(
            name="idle_activation_bytes", unit="bytes", better="lower",
            target_ratio=6.0, target="<= 1/6 of baseline",
        ),
        _Spec(name="activation_us", unit="us", better="lower"),
    )
}  # fmt: skip


class _Best:
    """The best value seen so far for each (figure, side)."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str], float] = {}

    def add(self, side: _Side, names: Sequence[str], values: Sequence[Any]) -> None:
        if len(values) != len(names):
            raise TypeError(
                f"{side.module} returned {len(values)} values for {list(names)}: {values!r}"
            )
        for name, raw in zip(names, values, strict=True):
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise TypeError(f"{side.module} returned {raw!r} for {name}; expected a number")
            value = float(raw)
            key = (name, side.label)
            old = self._values.get(key)
            if (
                old is None
                or (_SPECS[name].better == "higher" and value > old)
                or (_SPECS[name].better == "lower" and value < old)
            ):
                self._values[key] = value

    def figure(self, name: str) -> Figure:
        spec = _SPECS[name]
        return Figure(
            name=name,
            value=self._values[(name, _SUBJECT.label)],
            unit=spec.unit,
            better=spec.better,
            baseline=self._values[(name, _BASELINE.label)],
            baseline_name=BASELINE_NAME,
            target_ratio=spec.target_ratio,
            target=spec.target,
        )


async def _interleave(
    progress: Progress,
    rounds: int,
    best: _Best,
    names: Sequence[str],
    measure: Callable[[_Side], Awaitable[Sequence[Any]]],
) -> None:
    """baseline, subject, baseline, subject, ...: each measured in turn, best of each kept."""
    for r in range(1, rounds + 1):
        for side in (_BASELINE, _SUBJECT):
            progress.step(f"{names[0]}: {side.label} (round {r}/{rounds})")
            best.add(side, names, await measure(side))


async def run(quick: bool, progress: Progress) -> list[Figure]:
    """Measure both sides and return the seven figures of the runtime benchmark."""
    counts = QUICK if quick else DEFAULT
    best = _Best()

    async def tell(side: _Side) -> list[float]:
        return [await side.tell_throughput(counts.tell)]

    async def ask(side: _Side) -> tuple[float, float, float]:
        return await side.ask(counts.ask)

    async def fanout(side: _Side) -> list[float]:
        return [await side.fanout(counts.fanout_actors, counts.fanout_per_actor)]

    async def density(side: _Side) -> Sequence[Any]:
        result = await run_in_fresh_process(
            side.module, "density", counts.density, kill_after_seconds=_DENSITY_TIMEOUT_SECONDS
        )
        if not isinstance(result, list):
            raise TypeError(f"{side.module}.density returned {result!r}; expected [bytes, us]")
        return result

    await _interleave(progress, counts.rounds, best, ["tell_throughput"], tell)
    await _interleave(
        progress, counts.rounds, best, ["ask_throughput", "ask_p50_us", "ask_p99_us"], ask
    )
    await _interleave(progress, counts.rounds, best, ["fanout_throughput"], fanout)
    await _interleave(
        progress, counts.rounds, best, ["idle_activation_bytes", "activation_us"], density
    )
    return [best.figure(name) for name in _SPECS]
