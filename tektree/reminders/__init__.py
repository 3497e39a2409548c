"""Durable reminders: messages to virtual actors at a wall-clock time, once or periodically,
kept in the document store and claimed with a lease, so that each occurrence fires at or after
its time exactly once in effect, across restarts and node deaths.

Timers (``ctx.start_timer``) stay in memory and die with their activation; reminders do not:

```python
await self.ctx.reminders.register("weekly", Rollover(), due_at=monday, period_seconds=604800)
```

See :mod:`tektree.reminders._service` for how claims, leases and buckets work.
"""

from tektree.reminders._model import (
    BUCKETS,
    FAILED_REMINDERS,
    MIN_PERIOD_SECONDS,
    REMINDERS,
    Occurrence,
    Reminder,
    ReminderError,
    bucket_of,
    next_due_ms,
    occurrence_id,
    parse_occurrence,
    reminder_id,
)
from tektree.reminders._node_service import owned_buckets, reminders_service
from tektree.reminders._service import ReminderOptions, ReminderService, ReminderStatistics
from tektree.reminders._table import (
    REMINDERS_EXTENSION,
    ActorReminders,
    Reminders,
    RemindersNotRunning,
    ReminderSpec,
)

__all__ = [
    "BUCKETS",
    "FAILED_REMINDERS",
    "MIN_PERIOD_SECONDS",
    "REMINDERS",
    "REMINDERS_EXTENSION",
    "ActorReminders",
    "Occurrence",
    "Reminder",
    "ReminderError",
    "ReminderOptions",
    "ReminderService",
    "ReminderSpec",
    "ReminderStatistics",
    "Reminders",
    "RemindersNotRunning",
    "bucket_of",
    "next_due_ms",
    "occurrence",
    "occurrence_id",
    "owned_buckets",
    "parse_occurrence",
    "reminder_id",
    "reminders_service",
]


def occurrence(envelope: object) -> Occurrence | None:
    """The reminder occurrence an envelope delivers (``occurrence(self.ctx.envelope)``), or
    None when the message did not come from a reminder."""
    return parse_occurrence(getattr(envelope, "message_id", None))
