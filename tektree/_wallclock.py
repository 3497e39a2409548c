"""Wall-clock time for durable schedules (reminders, jobs): a protocol and the system clock.

Timers and asks run on trio's clock (monotonic, per process). What is written to the store and
compared across processes (a reminder's due time, a lease's end, a job's ``run_at``) is wall
time: Unix seconds. Services take a :class:`WallClock` so that tests can hold time still and
move it by hand (:class:`tektree.testing.ManualWallClock`) instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import trio

__all__ = ["ManualWallClock", "Passes", "SystemWallClock", "WallAlarm", "WallClock"]


@runtime_checkable
class WallClock(Protocol):
    """Unix time, and a way to wait for a moment of it."""

    def time(self) -> float:
        """Seconds since the Unix epoch."""
        ...

    async def sleep_until(self, when: float) -> None:
        """Return once :meth:`time` is at least ``when`` (a checkpoint even if it already is)."""
        ...


class SystemWallClock:
    """The machine's clock (``time.time``). A step of the clock is noticed within a second."""

    #: Longest single trio sleep: a wall clock stepped forward is seen within this.
    MAX_NAP_SECONDS = 1.0

    def time(self) -> float:
        return time.time()

    async def sleep_until(self, when: float) -> None:
        while True:
            delay = when - time.time()
            if delay <= 0:
                await trio.lowlevel.checkpoint()
                return
            await trio.sleep(min(delay, self.MAX_NAP_SECONDS))

    def __repr__(self) -> str:
        return "SystemWallClock()"


class ManualWallClock:
    """A wall clock that stands still until the test moves it (``advance`` / ``set``).

    Whatever sleeps on it (``sleep_until``) wakes as soon as the clock reaches its moment, in
    the same scheduling round, so a test moves time and then waits for effects under
    ``trio.fail_after`` without sleeping itself.
    """

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = float(start)
        self._lot = trio.lowlevel.ParkingLot()

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (>= 0) and wake the sleepers now due; the new time."""
        if seconds < 0:
            raise ValueError(f"ManualWallClock.advance() moves forward only, got {seconds!r}")
        return self.set(self._now + seconds)

    def set(self, when: float) -> float:
        """Put the clock at ``when`` (Unix seconds; backwards too) and wake every sleeper."""
        self._now = float(when)
        self._lot.unpark_all()
        return self._now

    async def sleep_until(self, when: float) -> None:
        await trio.lowlevel.checkpoint()
        while self._now < when:
            await self._lot.park()

    def __repr__(self) -> str:
        return f"ManualWallClock(time={self._now!r})"


class WallAlarm:
    """One task's sleep until a wall-clock moment (or forever), cut short by :meth:`poke`.

    A poke while the task is not sleeping makes its next sleep return at once, so no wake-up
    is lost between "looked for work" and "went to sleep".
    """

    def __init__(self, clock: WallClock) -> None:
        self._clock = clock
        self._scope: trio.CancelScope | None = None
        self._poked = False

    def poke(self) -> None:
        self._poked = True
        if self._scope is not None:
            self._scope.cancel()

    async def sleep_until(self, when: float | None) -> None:
        if self._poked:
            self._poked = False
            await trio.lowlevel.checkpoint()
            return
        with trio.CancelScope() as scope:
            self._scope = scope
            try:
                if when is None:
                    await trio.sleep_forever()
                else:
                    await self._clock.sleep_until(when)
            finally:
                self._scope = None
        self._poked = False


class Passes:
    """Counts the passes of a polling loop, so that a caller (a test) can wait for a pass that
    began after it asked, and then for the loop's work to be done.

    The loop calls :meth:`begin` and :meth:`end` around each pass, and :meth:`progress`
    whenever something :meth:`settle`'s ``idle`` predicate reads may have changed.
    """

    def __init__(self) -> None:
        self.started = 0
        self.finished = 0
        self._lot = trio.lowlevel.ParkingLot()

    def begin(self) -> None:
        self.started += 1

    def end(self) -> None:
        self.finished += 1
        self._lot.unpark_all()

    def progress(self) -> None:
        self._lot.unpark_all()

    async def settle(self, alarm: WallAlarm, idle: Callable[[], bool]) -> None:
        """Poke the loop, then return once a pass that began after this call has ended and
        ``idle()`` holds."""
        mark = self.started
        alarm.poke()
        await trio.lowlevel.checkpoint()
        while self.finished <= mark or not idle():
            await self._lot.park()

    async def wait_until(self, idle: Callable[[], bool]) -> None:
        """Return once ``idle()`` holds (checked at each :meth:`progress` or :meth:`end`)."""
        await trio.lowlevel.checkpoint()
        while not idle():
            await self._lot.park()
