"""Each domain job does its work, on a real embedded node (SQLite, the jobs and reminders
services, the profile, leaderboard and schedule pools), with clocks held still: a
``ManualWallClock`` for the services and a ``FixedClock`` for the actors."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import functools
import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from actors import events
from actors.accounts import USERS, Accounts, hasher_for_tests
from actors.jobs import (
    ANALYTICS,
    ARCHIVE_ENTRIES,
    DATA_EXPORTS,
    LEADERBOARD_ARCHIVES,
    MAIL_LOG,
    request_email_verification,
)
from actors.knowledge import QUESTIONS
from actors.leaderboard import LeaderboardActor, SetScore, Top
from actors.profile import ApplyEvent, GetProfile, UserProfileActor
from actors.quotas import QUOTA_COUNTERS
from actors.rules import FixedClock
from actors.subscriptions import SUBSCRIPTION_CHANGES
from tektree import Node
from tektree.jobs import (
    DONE,
    Job,
    JobQueue,
    JobWorkers,
    ScheduleActor,
    ensure_schedules,
    jobs_service,
    parse_schedules,
    queue_of,
)
from tektree.persistence import EVENTS, DocumentStore, format_timestamp
from tektree.reminders import ReminderService, reminders_service
from tektree.testing import ManualWallClock, open_test_node, test_config

# Monday of ISO week 2025-W51, 00:05 UTC: the rollover's moment; W50 has just ended.
MONDAY = dt.datetime(2025, 12, 15, 0, 5, tzinfo=dt.UTC)
SUNDAY = dt.datetime(2025, 12, 14, 15, 0, tzinfo=dt.UTC)


class Profile(UserProfileActor):
    clock = FixedClock(at=MONDAY)


class Board(LeaderboardActor):
    clock = FixedClock(at=MONDAY)


ACTORS: dict[str, Any] = {"user": Profile, "leaderboard": Board, "schedule": ScheduleActor}


@pytest.fixture(autouse=True)
def _clocks() -> Iterator[None]:
    Profile.clock = FixedClock(at=MONDAY)
    Board.clock = FixedClock(at=MONDAY)
    yield


def _config(data_dir: Path, kinds: dict[str, Any]) -> Any:
    return test_config(
        kinds,
        services=[
            {"type": "service", "name": "store", "service": "store"},
            {"type": "service", "name": "cluster", "service": "cluster"},
            {"type": "service", "name": "reminders", "service": "reminders"},
            {"type": "service", "name": "jobs", "service": "jobs",
             "options": {"registries": ["actors.jobs:JOBS"],
                         "settings": {"public_url": "https://tektree.test"}}},
        ],
        node={"data_dir": str(data_dir)},
    )


@asynccontextmanager
async def domain_node(
    data_dir: Path, at: dt.datetime, kinds: dict[str, Any] | None = None
) -> AsyncIterator[Node]:
    clock = ManualWallClock(start=at.timestamp())
    kinds = ACTORS if kinds is None else kinds
    services = {"reminders": functools.partial(reminders_service, clock=clock),
                "jobs": functools.partial(jobs_service, clock=clock)}
    async with open_test_node(_config(data_dir, kinds), actors=kinds,
                              services=services) as node:
        yield node


def _store(node: Node) -> DocumentStore:
    assert node.store is not None
    return node.store


def _queue(node: Node) -> JobQueue:
    return queue_of(node.system.extensions)


async def settle_jobs(node: Node) -> None:
    """Until no job is running or ready (follow-up jobs too)."""
    workers = node.system.extensions["jobs.workers"]
    assert isinstance(workers, JobWorkers)
    with trio.fail_after(20):
        await workers.settle()
        await node.system.wait_quiescent()


async def try_job(node: Node, job_type: str, payload: dict[str, Any], job_id: str) -> Job:
    """Enqueue one job, let the workers settle, return the job as it then is."""
    await _queue(node).enqueue(job_type, payload, job_id=job_id)
    await settle_jobs(node)
    job = await _queue(node).get(job_id)
    assert job is not None
    return job


async def run_job(node: Node, job_type: str, payload: dict[str, Any], job_id: str) -> Any:
    """Run one job to success; its result."""
    job = await try_job(node, job_type, payload, job_id)
    assert job.status == DONE, job
    return job.result


async def register(node: Node, handle: str, at: dt.datetime, **prefs: Any) -> str:
    accounts = Accounts(_store(node), hasher=hasher_for_tests())
    user = await accounts.register(email=f"{handle}@example.com", password="correct horse 1",
                                   handle=handle, first_name=handle.title(), now=at)
    if prefs:
        await accounts.update_profile(user.uid, {"preferences": prefs})
    return user.uid


async def log_event(node: Node, evt: object, event_id: str, at: dt.datetime) -> None:
    """Write a domain event to the event log as of ``at`` (marked published)."""
    envelope = events.to_envelope(evt, event_id=event_id, producer_id="test",
                                  timestamp=format_timestamp(at))
    async with _store(node).unit() as unit:
        unit.add_event(envelope)
    await _store(node).update(EVENTS, event_id, {"$set": {"published": True}})


async def credit(node: Node, user: str, evt: object, event_id: str, at: dt.datetime) -> None:
    """Apply a domain event to the user's profile, as the outbox relay would."""
    envelope = events.to_envelope(evt, event_id=event_id, producer_id="test",
                                  timestamp=format_timestamp(at)).to_dict()
    with trio.fail_after(10):
        reply = await node.system.ref("user", user).ask(ApplyEvent(envelope=envelope))
        await node.system.wait_quiescent()
    assert reply["status"] == "applied", reply


def _read_json(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def _emails(data_dir: Path) -> list[email.message.EmailMessage]:
    outbox = data_dir / "mail"
    files = sorted(outbox.iterdir()) if outbox.exists() else []
    return [email.message_from_bytes(f.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for f in files]


# -- the weekly rollover -----------------------------------------------------------------------


async def test_weekly_rollover_archives_the_board_and_grants_the_top_ten(tmp_path: Path) -> None:
    async with domain_node(tmp_path, MONDAY) as node:
        board = node.system.ref("leaderboard", "weekly:2025-W50")
        for i in range(12):
            await board.ask(SetScore(user_id=f"u{i:02d}", score=1000 - 10 * i,
                                     event_id=f"seed:{i}", at=SUNDAY))
        result = await run_job(node, "leaderboard.weekly_rollover",
                               {"scheduled_for": "2025-12-15T00:05:00Z"}, "rollover-1")
        assert result["board"] == "weekly:2025-W50" and result["ranked"] == 12
        assert result["granted"] == [f"u{i:02d}" for i in range(10)]

        store = _store(node)
        archive = await store.get(LEADERBOARD_ARCHIVES, "weekly:2025-W50")
        assert archive is not None
        assert (archive["ranked"], archive["period_end"]) == (12, "2025-12-15T00:00:00.000000Z")
        assert [e["user_id"] for e in archive["top"][:3]] == ["u00", "u01", "u02"]
        [chunk] = (await store.find(ARCHIVE_ENTRIES, {"board": "weekly:2025-W50"})).items
        assert [e["score"] for e in chunk["entries"]] == [1000 - 10 * i for i in range(12)]
        for i, expected in ((0, True), (9, True), (10, False)):
            profile = await node.system.ref("user", f"u{i:02d}").ask(GetProfile())
            assert ("ach_top_contributor" in profile["achievements"]) is expected

        again = await run_job(node, "leaderboard.weekly_rollover", {"week": "2025-W50"},
                              "rollover-2")
        assert again["granted"] == []  # idempotent on the week
        assert await store.count(EVENTS, {"event_type": "gamification.achievement.unlocked"}) == 10


async def test_rollover_refuses_a_week_that_has_not_ended(tmp_path: Path) -> None:
    async with domain_node(tmp_path, MONDAY) as node:
        job = await try_job(node, "leaderboard.weekly_rollover", {"week": "2025-W51"},
                            "too-early")
        assert job.status == "queued"  # waiting for a retry
        assert "2025-W51 ends at 2025-12-22" in (job.last_error or "")


# -- the rebuild -------------------------------------------------------------------------------


async def test_rebuild_replays_the_journals_into_the_board(tmp_path: Path) -> None:
    without_boards = {"user": Profile, "schedule": ScheduleActor}
    async with domain_node(tmp_path, MONDAY, without_boards) as node:  # board updates lost
        for n, user in enumerate(("ann", "bob", "cat")):
            await credit(node, user, events.UserRegistered(user_id=user, email=f"{user}@x.io",
                                                           handle=user), f"reg-{user}", SUNDAY)
            for q in range(n):
                await credit(node, user, events.QuestionPosted(
                    question_id=f"q-{user}-{q}", author_id=user, title="Why?"),
                    f"q-{user}-{q}", SUNDAY)
    async with domain_node(tmp_path, MONDAY) as node:
        board = node.system.ref("leaderboard", "global")
        assert await board.ask(Top(limit=10)) == []
        result = await run_job(node, "leaderboard.rebuild", {"board": "global"}, "rebuild-1")
        assert result == {"board": "global", "applied": 3}
        top = await board.ask(Top(limit=10))
        totals = [(user, (await node.system.ref("user", user).ask(GetProfile()))["total_xp"])
                  for user in ("cat", "bob", "ann")]
        assert [(e["user_id"], e["score"]) for e in top] == totals
        assert totals[0][1] > totals[1][1] > totals[2][1] > 0
        weekly = await run_job(node, "leaderboard.rebuild", {"board": "weekly:2025-W50"},
                               "rebuild-2")
        assert weekly == {"board": "weekly:2025-W50", "applied": 3}
        # Again: the board already holds these versions, so nothing is written.
        assert await run_job(node, "leaderboard.rebuild", {"board": "global"},
                             "rebuild-3") == {"board": "global", "stale": 3}


# -- analytics ---------------------------------------------------------------------------------


async def test_daily_and_weekly_analytics(tmp_path: Path) -> None:
    day = dt.datetime(2025, 12, 14, 12, 0, tzinfo=dt.UTC)
    async with domain_node(tmp_path, MONDAY) as node:
        store = _store(node)
        await register(node, "early", day - dt.timedelta(days=3))
        for handle in ("ann", "bob"):
            await register(node, handle, day)
        await store.insert(QUESTIONS, {"_id": "q1", "created_by": "ann",
                                       "created_at": format_timestamp(day)})
        for i, (user, amount) in enumerate((("ann", 10), ("ann", 5), ("bob", 50))):
            await log_event(node, events.XpEarned(user_id=user, amount=amount, reason="x",
                                                  source_event_id=f"s{i}", total_xp=amount),
                            f"xp{i}", day)
        await log_event(node, events.XpEarned(user_id="old", amount=7, reason="x",
                                              source_event_id="s9", total_xp=7),
                        "xp-before", day - dt.timedelta(days=2))

        daily = await run_job(node, "analytics.daily", {"scheduled_for": "2025-12-15T00:15:00Z"},
                              "analytics-daily")
        assert daily["id"] == "daily:2025-12-14"
        doc = await store.get(ANALYTICS, "daily:2025-12-14")
        assert doc is not None
        figures = doc["figures"]
        assert (figures["users_total"], figures["users_new"]) == (3, 2)
        assert (figures["questions_total"], figures["questions_new"]) == (1, 1)
        assert figures["registrations"] == 2  # user.registered events of the day
        assert (figures["xp_earned"], figures["active_users"]) == (65, 2)

        weekly = await run_job(node, "analytics.weekly", {"week": "2025-W50"},
                               "analytics-weekly")
        assert weekly["id"] == "weekly:2025-W50"
        assert (weekly["xp_earned"], weekly["active_users"], weekly["users_new"]) == (72, 3, 3)


# -- emails ------------------------------------------------------------------------------------


async def test_daily_digest_mails_each_user_with_news_once(tmp_path: Path) -> None:
    day = dt.datetime(2025, 12, 14, 9, 0, tzinfo=dt.UTC)
    async with domain_node(tmp_path, MONDAY) as node:
        ann = await register(node, "ann", day)
        quiet = await register(node, "quiet", day, digest=False)
        await log_event(node, events.XpEarned(user_id=ann, amount=25, reason="x",
                                              source_event_id="s1", total_xp=25), "xp1", day)
        await log_event(node, events.XpEarned(user_id=quiet, amount=5, reason="x",
                                              source_event_id="s2", total_xp=5), "xp2", day)
        await log_event(node, events.AnswerSubmitted(answer_id="a1", question_id="q1",
                                                     author_id=quiet, question_author_id=ann),
                        "ans1", day)
        fanout = await run_job(node, "email.daily_digest",
                               {"scheduled_for": "2025-12-15T07:00:00Z"}, "digest-fanout")
        assert fanout == {"day": "2025-12-14", "users": 2, "enqueued": 2}
        [mail] = _emails(tmp_path)  # "quiet" turned digests off
        assert mail["To"] == "ann@example.com"
        assert mail["Subject"] == "Your TekTree day: +25 XP"
        body = mail.get_body(preferencelist=("plain",))
        assert body is not None and "answers to your questions: 1" in body.get_content()

        rerun = await run_job(node, "email.digest", {"user_id": ann, "day": "2025-12-14"},
                              "digest-again")
        assert rerun["status"] == "already sent"
        assert len(_emails(tmp_path)) == 1
        assert await _store(node).count(MAIL_LOG, {"kind": "digest"}) == 1


async def test_verification_email_carries_a_working_token(tmp_path: Path) -> None:
    async with domain_node(tmp_path, MONDAY) as node:
        ann = await register(node, "ann", MONDAY - dt.timedelta(hours=1))
        bob = await register(node, "bob", MONDAY - dt.timedelta(hours=2))
        old = await register(node, "old", MONDAY - dt.timedelta(days=3))
        outcome = await request_email_verification(_queue(node), ann)
        assert outcome.created
        assert not (await request_email_verification(_queue(node), ann)).created
        await settle_jobs(node)
        [mail] = _emails(tmp_path)
        body = mail.get_body(preferencelist=("plain",))
        assert body is not None
        match = re.search(r"https://tektree\.test/api/v1/auth/verify-email\?token=(\S+)",
                          body.get_content())
        assert match is not None
        user = await Accounts(_store(node)).verify_email(match.group(1), now=MONDAY)
        assert user.email_verified

        sweep = await run_job(node, "email.verification_sweep", {}, "sweep-1")
        assert sweep == {"enqueued": 1}  # bob; ann is verified, old is past the window
        assert sorted(m["To"] for m in _emails(tmp_path)) == ["ann@example.com",
                                                             "bob@example.com"]
        assert old and bob


# -- streaks -----------------------------------------------------------------------------------


async def test_streak_at_risk_nudges_who_was_active_yesterday_only(tmp_path: Path) -> None:
    evening = dt.datetime(2025, 12, 15, 20, 0, tzinfo=dt.UTC)
    yesterday = dt.datetime(2025, 12, 14, 10, 0, tzinfo=dt.UTC)
    today = dt.datetime(2025, 12, 15, 9, 0, tzinfo=dt.UTC)
    Profile.clock = FixedClock(at=evening)
    async with domain_node(tmp_path, evening) as node:
        ann = await register(node, "ann", yesterday)
        bob = await register(node, "bob", yesterday)
        for user, at in ((ann, yesterday), (bob, yesterday), (bob, today)):
            key = f"{user}-{at.date()}"
            await credit(node, user, events.QuestionPosted(question_id=key, author_id=user,
                                                           title="Why?"), key, at)
            await log_event(node, events.XpEarned(user_id=user, amount=5, reason="x",
                                                  source_event_id=key, total_xp=5),
                            f"xp-{key}", at)
        received: list[dict[str, Any]] = []
        pubsub: Any = node.system.extensions["pubsub"]
        with pubsub.subscribe(f"notifications:{ann}") as subscription:
            result = await run_job(node, "gamification.streak_at_risk",
                                   {"scheduled_for": "2025-12-15T20:00:00Z"}, "streak-1")
            with trio.fail_after(5):
                received.append(await subscription.receive())
        assert result == {"day": "2025-12-15", "candidates": 1, "nudged": [ann]}
        assert received[0]["event_type"] == "gamification.streak.at_risk"
        assert received[0]["payload"]["streak_days"] == 1
        [mail] = _emails(tmp_path)
        assert mail["To"] == "ann@example.com" and "streak ends at midnight" in mail["Subject"]
        again = await run_job(node, "gamification.streak_at_risk",
                              {"scheduled_for": "2025-12-15T20:00:00Z"}, "streak-2")
        assert again["nudged"] == []  # once a day
        assert await _store(node).count(EVENTS, {"event_type": "gamification.streak.at_risk"}) == 1


# -- data export -------------------------------------------------------------------------------


async def test_data_export_writes_every_document_about_the_user(tmp_path: Path) -> None:
    async with domain_node(tmp_path, MONDAY) as node:
        ann = await register(node, "ann", SUNDAY)
        await credit(node, ann, events.UserRegistered(user_id=ann, email="ann@example.com",
                                                      handle="ann"), f"evt_registered_{ann}",
                     SUNDAY)
        await _store(node).insert(QUESTIONS, {"_id": "q1", "created_by": ann,
                                              "created_at": format_timestamp(SUNDAY)})
        await _store(node).insert(QUESTIONS, {"_id": "q2", "created_by": "someone-else",
                                              "created_at": format_timestamp(SUNDAY)})
        for uid in (ann, "someone-else"):
            await _store(node).insert(QUOTA_COUNTERS, {"_id": f"quota:{uid}:questions:2025-12",
                                                       "user_id": uid, "count": 1})
            await _store(node).insert(SUBSCRIPTION_CHANGES, {"_id": f"{uid}:1", "user_id": uid,
                                                             "rev": 1})
        result = await run_job(node, "users.data_export", {"user_id": ann}, "export-1")
        path = Path(result["path"])
        assert path.is_relative_to(tmp_path / "exports" / ann)
        document = _read_json(path)
        collections = document["collections"]
        [account] = collections[USERS]
        assert account["email"] == "ann@example.com" and "password_hash" not in account
        assert [q["_id"] for q in collections[QUESTIONS]] == ["q1"]
        assert [c["user_id"] for c in collections[QUOTA_COUNTERS]] == [ann]
        assert [c["_id"] for c in collections[SUBSCRIPTION_CHANGES]] == [f"{ann}:1"]
        assert len(collections["journal"]) == 1  # the welcome bonus
        assert {e["event_type"] for e in collections[EVENTS]} >= {
            "user.registered", "gamification.xp.earned"}
        profile = await node.system.ref("user", ann).ask(GetProfile())
        assert document["leaderboard"]["score"] == profile["total_xp"] > 0
        assert result["counts"] == document["counts"]
        assert await _store(node).count(DATA_EXPORTS, {"user_id": ann}) == 1

        bad = await try_job(node, "users.data_export", {"user_id": "../../etc"}, "export-bad")
        assert "is not a user id" in (bad.last_error or "")


# -- the schedules ---------------------------------------------------------------------------------


async def test_a_schedule_runs_the_rollover_on_monday(tmp_path: Path) -> None:
    sunday_night = dt.datetime(2025, 12, 14, 23, 0, tzinfo=dt.UTC)
    async with domain_node(tmp_path, sunday_night) as node:
        await node.system.ref("leaderboard", "weekly:2025-W50").ask(
            SetScore(user_id="ann", score=10, event_id="seed", at=SUNDAY))
        reminders: Any = node.system.extensions["reminders"]
        schedules = parse_schedules([{"name": "weekly-rollover",
                                      "job": "leaderboard.weekly_rollover", "every": "week",
                                      "weekday": "monday", "at": "00:05"}], where="test")
        await ensure_schedules(reminders, schedules, now=sunday_night.timestamp())
        clock = reminders.clock
        assert isinstance(clock, ManualWallClock)
        clock.set(MONDAY.timestamp())
        service = node.system.extensions["reminders.service"]
        assert isinstance(service, ReminderService)
        with trio.fail_after(10):
            await service.settle()
        job = await _queue(node).get("schedule:weekly-rollover:2025-12-15T00:05:00Z")
        assert job is not None
        await settle_jobs(node)
        archive = await _store(node).get(LEADERBOARD_ARCHIVES, "weekly:2025-W50")
        assert archive is not None and archive["ranked"] == 1
