"""TekTree's background jobs, run by the kernel's jobs service (``registries =
["actors.jobs:JOBS"]`` in ``supervisor.toml``) and scheduled there:

- ``leaderboard.weekly_rollover`` (Mondays 00:05 UTC): archive the finished week's board,
  grant its top 10 ``ach_top_contributor``;
- ``leaderboard.rebuild`` (on demand): replay the profiles' journals into a board;
- ``analytics.daily`` / ``analytics.weekly`` (00:15 UTC / Mondays 00:20): counts and XP of the
  finished day / week into ``analytics``;
- ``email.daily_digest`` -> ``email.digest`` (07:00 UTC): one digest per user with news;
- ``email.verification``: the verification link, on registration
  (:func:`request_email_verification`) and from a sweep every 10 minutes;
- ``gamification.streak_at_risk`` (20:00 UTC): nudge users whose streak ends at midnight;
- ``users.data_export`` (on demand): every document about a user, as JSON.

Each handler is idempotent on its job (or the period it works on): a retry, a rerun or a
second delivery of a schedule changes nothing twice.
"""

from actors.jobs import analytics, emails, export, leaderboards, streaks
from actors.jobs._common import (
    ANALYTICS,
    ARCHIVE_ENTRIES,
    DATA_EXPORTS,
    INDEXES,
    JOBS,
    LEADERBOARD_ARCHIVES,
    MAIL_LOG,
)
from actors.jobs.analytics import aggregate
from actors.jobs.emails import request_email_verification
from actors.jobs.export import export_user_data
from actors.jobs.leaderboards import TOP_CONTRIBUTOR, profile_scores

__all__ = [
    "ANALYTICS",
    "ARCHIVE_ENTRIES",
    "DATA_EXPORTS",
    "INDEXES",
    "JOBS",
    "LEADERBOARD_ARCHIVES",
    "MAIL_LOG",
    "TOP_CONTRIBUTOR",
    "aggregate",
    "analytics",
    "emails",
    "export",
    "export_user_data",
    "leaderboards",
    "profile_scores",
    "request_email_verification",
    "streaks",
]
