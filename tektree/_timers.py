"""One timer queue per node: a heap of deadlines driven by a single task.

Ask deadlines, actor timers and restart backoffs all live here. A trio ``CancelScope`` with a
deadline costs about 7 µs to set up here; a heap push costs well under one, so an ask never
opens a cancel scope of its own: its deadline is an entry in this heap. Cancelled entries are
dropped lazily and the heap is compacted when they outnumber the live ones, so it never holds
more than about twice the live entries.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from typing import Any

import structlog
import trio

_log = structlog.get_logger("tektree.timers")


class TimerHandle:
    """One scheduled call. ``cancel()`` is idempotent and O(1)."""

    __slots__ = ("_queue", "args", "callback", "cancelled", "when")

    def __init__(
        self, queue: TimerQueue, when: float, callback: Callable[..., None], args: tuple[Any, ...]
    ) -> None:
        self._queue = queue
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self._queue._cancelled += 1

    def __lt__(self, other: TimerHandle) -> bool:
        return self.when < other.when


class TimerQueue:
    """The node's timers. State lives here; :meth:`run` is the (restartable) driver task."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._cancelled = 0
        self._wake: trio.CancelScope | None = None
        self._wake_at = math.inf
        self.fired = 0
        self.errors = 0
        #: trio's current time. While :meth:`run` drives the queue, the run's clock's own
        #: ``current_time`` (one call, where ``trio.current_time`` makes three): every ask
        #: reads it for its deadline and every turn for its activity time.
        self.now: Callable[[], float] = trio.current_time

    def __len__(self) -> int:
        return len(self._heap) - self._cancelled

    def call_at(self, when: float, callback: Callable[..., None], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` in the driver task at trio time ``when`` (or soon after).

        Callbacks must be quick and synchronous; they may not raise (errors are logged).
        """
        handle = TimerHandle(self, when, callback, args)
        heapq.heappush(self._heap, (when, next(self._seq), handle))
        if when < self._wake_at and self._wake is not None:
            self._wake_at = when
            self._wake.deadline = when
        if self._cancelled > 64 and self._cancelled * 2 > len(self._heap):
            self._compact()
        return handle

    def call_later(self, delay: float, callback: Callable[..., None], *args: Any) -> TimerHandle:
        return self.call_at(self.now() + delay, callback, *args)

    def _compact(self) -> None:
        self._heap = [entry for entry in self._heap if not entry[2].cancelled]
        heapq.heapify(self._heap)
        self._cancelled = 0

    def _fire_due(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, handle = heapq.heappop(heap)
            if handle.cancelled:
                self._cancelled -= 1
                continue
            handle.cancelled = True  # fired: a later cancel() is a no-op
            try:
                handle.callback(*handle.args)
            except Exception:
                self.errors += 1
                _log.exception("timer callback failed", callback=repr(handle.callback))
            else:
                self.fired += 1

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Drive the queue until cancelled. Restartable: pending timers survive a restart."""
        self.now = trio.lowlevel.current_clock().current_time
        task_status.started()
        try:
            while True:
                self._fire_due(self.now())
                self._wake_at = self._heap[0][0] if self._heap else math.inf
                with trio.CancelScope(deadline=self._wake_at) as scope:
                    self._wake = scope
                    await trio.sleep_forever()
                self._wake = None
        finally:
            self.now = trio.current_time
            self._wake = None
            self._wake_at = math.inf
