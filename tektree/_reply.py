"""The one-shot slot an ask waits on: a parked task, woken once with a value or an error.

Cheaper than ``trio.Event`` plus a result attribute: the waiter parks with
``wait_task_rescheduled`` and the replier hands it the outcome directly with ``reschedule``.
"""

from __future__ import annotations

from typing import Any

import outcome
from trio.lowlevel import Abort, RaiseCancelT, Task, current_task, reschedule, wait_task_rescheduled


class ReplySlot:
    """Filled at most once; later fills are ignored (a late reply after a timeout is dropped)."""

    __slots__ = ("_outcome", "_task", "abandoned")

    def __init__(self) -> None:
        self._outcome: outcome.Outcome[Any] | None = None
        self._task: Task | None = None
        self.abandoned = False

    @property
    def done(self) -> bool:
        return self._outcome is not None

    def set_value(self, value: Any) -> None:
        self._fill(outcome.Value(value))

    def set_error(self, error: BaseException) -> None:
        self._fill(outcome.Error(error))

    def _fill(self, result: outcome.Outcome[Any]) -> None:
        if self._outcome is not None:
            return
        self._outcome = result
        task = self._task
        if task is not None:
            self._task = None
            reschedule(task, result)

    async def wait(self) -> Any:
        """Wait for the fill. Cancellation abandons the slot: a later fill is dropped."""
        result = self._outcome
        if result is not None:
            return result.unwrap()
        self._task = current_task()
        return await wait_task_rescheduled(self._abort)

    def _abort(self, _: RaiseCancelT) -> Abort:
        self._task = None
        self.abandoned = True
        return Abort.SUCCEEDED
