"""``UserProfileActor``: one user's gamification profile, event-sourced.

The seed's ``gamification_profiles`` document is a fold of the user's journal, whose events are
the seed's ``xp_transactions`` grouped by cause: each domain event that credits the user (see
:func:`credits`) becomes **one** journal event, appended under the cause's id, holding every XP
transaction it produced (the action's XP, streak milestone, quest and achievement bonuses) and
the new streak, quest and counter values. The gamification events it raises
(``gamification.xp.earned``, ``level.up``, ``achievement.unlocked``, ``quest.completed``,
``streak.milestone``) go to the outbox in the same unit.

Idempotency. The journal key of a cause is the domain event id (for votes and likes: one key per
voter and target, ``upvote:<type>:<target>:<voter>``, so voting, withdrawing and voting again
pays once). The last ``idempotency_window`` keys are in the state (answered without touching the
store); older ones collide in the journal (``persist`` returns False). One journal event per
cause, never several: ``persist`` suffixes several events with ``#i``, and a redelivery computed
on a later state could produce a different number of them.

Time. Rules take the time the activity happened: the event's ``timestamp`` (the clock's ``now``
when it has none). So a redelivery hours later is charged to the right UTC day and ISO week.
The actor's :class:`~actors.rules.Clock` (class attribute ``clock``; tests subclass with a
``FixedClock``) answers "now" for the reads: today's daily XP, the streak shown today, quests.

After the unit commits, the actor tells the leaderboards (``global``, ``weekly:<ISO week of
the event>`` and ``area:<id>`` for each area the causing content is in: the payload's
``area_ids``, at most ``MAX_AREA_BOARDS``; the area score is the XP the user earned through
content of that area) the user's new scores, versioned by the journal ``seq`` so a stale update
never overwrites a newer one, and publishes each gamification event to ``notifications:<user>``.
Both are best effort: scores are absolute (the next update repairs a lost one) and pub/sub is
fire-and-forget; the outbox holds the durable copy of every event.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final

import attrs

from actors import events
from actors.credits import Credit, InvalidEvent, credits, event_time
from actors.leaderboard import LEADERBOARD_KIND, OptOut, SetScore
from actors.rules import (
    ACHIEVEMENTS,
    AchievementDef,
    BoardNameError,
    Clock,
    FeaturedAchievementError,
    QuestState,
    StreakState,
    SystemClock,
    XpReason,
    XpTable,
    XpTableError,
    area_board,
    charge,
    choose_featured,
    current_streak_on,
    day_id,
    evaluate_achievements,
    iso_week,
    level_for,
    levels_gained,
    next_utc_midnight,
    quest_period_id,
    quest_progress,
    record_activity,
    record_quests,
    requested_xp,
    streak_milestone_reason,
    transaction_document,
    utc_day,
)
from tektree import TekTreeError, handler, message
from tektree.persistence import JOURNAL, DomainEvent, EventSourcedActor, format_timestamp, utc_now

__all__ = [
    "APPLIED",
    "COUNTERS",
    "USER_KIND",
    "ApplyEvent",
    "Credit",
    "GetProfile",
    "GetQuests",
    "GetXpTransactions",
    "GrantAchievement",
    "InvalidEvent",
    "SetFeatured",
    "SetLeaderboardOptOut",
    "UserProfileActor",
    "credits",
    "event_time",
    "notifications_topic",
]

USER_KIND: Final = "user"
#: Journal event types.
APPLIED: Final = "gamification.applied"
FEATURED: Final = "gamification.featured"
OPTED_OUT: Final = "gamification.opt_out"
#: The counters a profile keeps (``streak_days``, ``level`` and ``weekly_rank`` are derived).
COUNTERS: Final = (
    "questions_posted", "answers_submitted", "answers_accepted", "upvotes_received",
    "insights_published", "comments_added", "areas_created",
)  # fmt: skip
MAX_TRANSACTIONS_PAGE: Final = 100
#: Area boards told per event at most (an event's content listing more areas feeds the first).
MAX_AREA_BOARDS: Final = 8
_OPTIONS: Final = frozenset({"xp_table", "role"})


def notifications_topic(user_id: str) -> str:
    """The pub/sub topic of one user's notifications."""
    return f"notifications:{user_id}"


# -- messages ------------------------------------------------------------------------------------
@message("user.apply_event")
class ApplyEvent:
    """Apply a domain event envelope (the seed's ``events`` document) to the user's profile."""

    envelope: dict[str, Any]


@message("user.get_profile")
class GetProfile:
    pass


@message("user.get_xp_transactions")
class GetXpTransactions:
    """Newest first; ``cursor`` is the ``next_cursor`` of the previous page."""

    limit: int = 20
    cursor: str | None = None


@message("user.get_quests")
class GetQuests:
    pass


@message("user.grant_achievement")
class GrantAchievement:
    """Unlock ``achievement_id`` for an outside cause (e.g. ``weekly_top10:2025-W50``), paying
    its XP reward; idempotent on ``cause_id`` (and a no-op when already unlocked). ``at`` is
    when the cause happened (default: the clock's now)."""

    achievement_id: str
    cause_id: str
    at: dt.datetime | None = None


@message("user.set_featured")
class SetFeatured:
    ids: tuple[str, ...]


@message("user.set_leaderboard_opt_out")
class SetLeaderboardOptOut:
    opted_out: bool


# -- which events credit whom (pure; the wiring routes with it too) --------------------------------
def _streak_doc(state: StreakState) -> dict[str, Any]:
    day = state.last_active_day
    return {"current": state.current, "longest": state.longest,
            "last_active_day": None if day is None else day_id(day),
            "freezes_available": state.freezes_available}  # fmt: skip


def _streak(doc: Mapping[str, Any]) -> StreakState:
    day = doc["last_active_day"]
    return StreakState(current=doc["current"], longest=doc["longest"],
                       last_active_day=None if day is None else dt.date.fromisoformat(day),
                       freezes_available=doc["freezes_available"])  # fmt: skip


@attrs.define(kw_only=True)  # not frozen: a frozen init costs a setattr call per field
class _Gain:
    """What one credit does: the journal event, the outbox events, the scores to announce."""

    record: dict[str, Any]
    outbox: list[DomainEvent]
    xp: int
    weekly: dict[str, Any] | None
    areas: dict[str, int]
    #: The quest state after the gain (``record["quests"]`` is its snapshot).
    quests: QuestState
    #: The streak after the gain (``record["streak"]`` is its document when it changed).
    streak: StreakState


def _area_ids(source: Mapping[str, Any]) -> list[str]:
    """The areas of the causing content (its payload's ``area_ids``): the valid ids, once
    each, at most ``MAX_AREA_BOARDS``; anything else is left out (a board name is checked)."""
    payload = source.get("payload")
    ids = payload.get("area_ids") if isinstance(payload, Mapping) else None
    if not isinstance(ids, list | tuple):
        return []
    out: list[str] = []
    for area in ids:
        if isinstance(area, str) and area not in out:
            try:
                area_board(area)
            except BoardNameError:
                continue
            out.append(area)
    return out[:MAX_AREA_BOARDS]


def _gain(
    state: Mapping[str, Any], credit: Credit, at: dt.datetime, table: XpTable,
    source: Mapping[str, Any], producer: str, granted: Sequence[AchievementDef] = (),
    quests: QuestState | None = None, streak: StreakState | None = None,
) -> _Gain:
    """What ``credit`` earns on ``state``. ``quests`` and ``streak`` are ``state["quests"]``
    and ``state["streak"]`` already parsed, when the caller holds them (parsing them each
    event is a good part of the cost)."""
    user = credit.user_id
    # The ledger as plain values, charged by ``charge`` (what ``award`` does, without building
    # and validating an ``XpLedger`` / ``XpTransaction`` / ``Award`` per payment).
    total, used, day_text = state["total_xp"], state["daily_xp_earned"], state["daily_xp_day"]
    cap_day = None if day_text is None else dt.date.fromisoformat(day_text)
    at_day = utc_day(at)
    paid: set[str] = set()  # award's idempotency within the gain (its ledger starts empty)
    txns: list[dict[str, Any]] = []
    outbox: list[DomainEvent] = []
    at_text = format_timestamp(at)
    correlation_id, trace_id = source.get("correlation_id"), source.get("trace_id")
    produced = utc_now()  # when produced: one unit, one time
    metadata = {"user_id": user, "source_event_id": source.get("event_id")}

    def emit(evt: object, event_id: str) -> None:
        outbox.append(events.to_envelope(
            evt, event_id=event_id, producer_id=producer, correlation_id=correlation_id,
            trace_id=trace_id, timestamp=produced, metadata=metadata))

    def pay(reason: XpReason, key: str, amount: int | None = None) -> int:
        nonlocal total, cap_day, used
        requested = requested_xp(reason, table, amount)
        if key in paid:
            return 0
        paid.add(key)
        exempt = reason in table.cap_exempt
        cap_day, granted, used = charge(cap_day, used, day=at_day, requested=requested,
                                        exempt=exempt, daily_cap=table.daily_cap)
        total += granted
        txn = transaction_document(
            user_id=user, event_id=key, reason=reason, requested=requested, granted=granted,
            daily_total=used, daily_cap=table.daily_cap, exempt=exempt, cap_day=cap_day,
            timestamp=at_text)
        txn["related_entity_type"] = credit.entity_type
        txn["related_entity_id"] = credit.entity_id
        txns.append(txn)
        if granted > 0:
            emit(events.XpEarned(user_id=user, amount=granted, reason=reason.value,
                                 source_event_id=key, total_xp=total,
                                 capped_amount=requested - granted),
                 f"evt_xp:{user}:{key}")
        return granted

    base = 0 if credit.reason is None else pay(credit.reason, credit.key)

    if streak is None:
        streak = _streak(state["streak"])
    streak_changed = False
    if credit.reason is not None:
        update = record_activity(streak, at_day)
        streak_changed = update.state is not streak and update.state != streak
        streak = update.state
        for milestone in update.milestones:
            bonus = pay(streak_milestone_reason(milestone.days), milestone.award_event_id)
            emit(events.StreakMilestone(user_id=user, days=milestone.days, bonus_xp=bonus),
                 f"evt_streak:{user}:{milestone.day.isoformat()}:{milestone.days}")

    if quests is None:
        quests = QuestState.from_snapshot(state["quests"])
    amounts = [(name, 1) for name in credit.counters]
    amounts.append(("xp_earned", base))
    quest_update = record_quests(quests, amounts, at=at)
    quests = quest_update.new_state
    for quest in quest_update.completed:
        period = quest_period_id(quest.period, at)
        reward = pay(XpReason.QUEST_COMPLETED, f"quest:{quest.id}:{period}", quest.xp_reward)
        emit(events.QuestCompleted(user_id=user, quest_id=quest.id, period=period,
                                   xp_reward=reward), f"evt_quest:{user}:{quest.id}:{period}")

    unlocked = set(state["achievements"])
    newly: list[str] = []

    def unlock(achievement: AchievementDef) -> None:
        unlocked.add(achievement.id)
        newly.append(achievement.id)
        reward = pay(XpReason.ACHIEVEMENT_UNLOCKED, f"achievement:{achievement.id}",
                     achievement.xp_reward)
        emit(events.AchievementUnlocked(user_id=user, achievement_id=achievement.id,
                                        name=achievement.name, xp_reward=reward),
             f"evt_achievement:{user}:{achievement.id}")

    for achievement in granted:  # unlocked by an outside cause (a finished week's top 10)
        if achievement.id not in unlocked:
            unlock(achievement)
    # Only the achievements whose inputs this event changed (the others were checked when
    # theirs last changed): its counters, the streak, the level.
    stats = dict(state["counters"])
    for name in credit.counters:
        stats[name] = stats.get(name, 0) + 1
    stats["streak_days"] = streak.current
    stats["level"] = state["current_level"]
    changed = set(credit.counters)
    if streak.current != state["streak"]["current"]:
        changed.add("streak_days")
    for _ in range(len(ACHIEVEMENTS)):  # an achievement's XP may raise the level: another round
        level = level_for(total).current_level
        if level != stats["level"]:
            changed.add("level")
            stats["level"] = level
        if not changed:
            break
        found = evaluate_achievements(stats, unlocked, changed=changed)
        if not found:
            break
        for achievement in found:
            unlock(achievement)
        changed = set()

    # levels_gained is [] unless the level changed (the common case: skip it).
    gained = (levels_gained(state["total_xp"], total)
              if level_for(total).current_level != state["current_level"] else [])  # fmt: skip
    for level in gained:
        emit(events.LevelUp(user_id=user, old_level=level - 1, new_level=level,
                            total_xp=total), f"evt_level:{user}:{level}")

    xp = total - state["total_xp"]
    week, held = iso_week(at), state["weekly"]
    weekly: dict[str, Any] | None
    if held is not None and held["week"] == week:
        weekly = {"week": week, "xp": held["xp"] + xp}
    elif held is None or week > held["week"]:
        weekly = {"week": week, "xp": xp}
    else:
        weekly = None  # a late event of a closed week: that board is final
    held_areas = state.get("area_xp") or {}
    areas = {area: held_areas.get(area, 0) + xp for area in _area_ids(source)} if xp > 0 else {}
    record = {
        "type": APPLIED, "cause": credit.key, "source_event_id": source.get("event_id"),
        "source_event_type": source.get("event_type"), "at": at_text,
        "transactions": txns, "counters": {name: 1 for name in credit.counters},
        "streak": _streak_doc(streak) if streak_changed else None,
        "quests": quests.snapshot(), "unlocked": newly, "weekly": weekly,
        "areas": areas or None,
    }  # fmt: skip
    return _Gain(record=record, outbox=outbox, xp=xp, weekly=weekly, areas=areas,
                 quests=quests, streak=streak)


def _xp_table(options: Mapping[str, Any]) -> XpTable:
    unknown = set(options) - _OPTIONS
    if unknown:
        raise XpTableError(f"options.{sorted(unknown)[0]}", options[sorted(unknown)[0]],
                           f"unknown option of kind {USER_KIND!r}; known: {sorted(_OPTIONS)}")
    return XpTable.from_mapping(options.get("xp_table", {}))


class UserProfileActor(EventSourcedActor[dict[str, Any]]):
    """Kind ``user``, key = the user id (see the module docstring)."""

    snapshot_every = 100
    #: Where "now" comes from for the reads; tests subclass with a ``FixedClock``.
    clock: ClassVar[Clock] = SystemClock()

    table: XpTable
    #: The last profile view: (its UTC day, the state it was built from, the view).
    _view: tuple[dt.date, dict[str, Any], dict[str, Any]] | None = None
    #: ``state["quests"]`` (the document) and its parsed ``QuestState``, while that document
    #: is the state's: each gain starts from it instead of parsing the document again.
    _quests: tuple[dict[str, Any], QuestState] | None = None
    #: The same for ``state["streak"]`` and its parsed ``StreakState``.
    _held_streak: tuple[dict[str, Any], StreakState] | None = None

    async def on_activate(self) -> None:
        self.table = _xp_table(self.ctx.options)
        await super().on_activate()

    def initial_state(self) -> dict[str, Any]:
        return {
            "user_id": self.ctx.id.key, "total_xp": 0, "current_level": 1,
            "xp_to_next_level": level_for(0).xp_to_next_level, "daily_xp_earned": 0,
            "daily_xp_day": None, "streak": _streak_doc(StreakState()),
            "last_activity_at": None, "achievements": [], "featured_achievements": [],
            "quests": QuestState().snapshot(), "counters": dict.fromkeys(COUNTERS, 0),
            "weekly": None, "area_xp": {}, "leaderboard_opt_out": False, "recent_event_ids": [],
            "updated_at": None,
        }  # fmt: skip

    def apply(self, state: dict[str, Any], event: Mapping[str, Any]) -> dict[str, Any]:
        self._view = None  # every change of the state passes here: the cached view is stale
        kind = event["type"]
        if kind == APPLIED:
            for txn in event["transactions"]:
                state["total_xp"] += txn["amount"]
                state["daily_xp_day"] = txn["cap_day"]
                state["daily_xp_earned"] = txn["daily_total"]
            info = level_for(state["total_xp"])
            state["current_level"] = info.current_level
            state["xp_to_next_level"] = info.xp_to_next_level
            for name, delta in event["counters"].items():
                state["counters"][name] = state["counters"].get(name, 0) + delta
            if event["streak"] is not None:
                state["streak"] = event["streak"]
                state["last_activity_at"] = event["at"]
            state["quests"] = event["quests"]
            state["achievements"] = [*state["achievements"], *event["unlocked"]]
            if event["weekly"] is not None:
                state["weekly"] = event["weekly"]
            if event.get("areas"):  # absent from records written before area boards
                state["area_xp"] = {**(state.get("area_xp") or {}), **event["areas"]}
            window = self.table.idempotency_window
            state["recent_event_ids"] = [*state["recent_event_ids"], event["cause"]][-window:]
            state["updated_at"] = event["at"]
        elif kind == FEATURED:
            state["featured_achievements"] = list(event["ids"])
        elif kind == OPTED_OUT:
            state["leaderboard_opt_out"] = event["opted_out"]
        return state

    # -- reads -------------------------------------------------------------------------------------
    @handler
    def get_profile(self, msg: GetProfile) -> dict[str, Any]:
        """The profile view as of now. It depends on "now" only through today's UTC day (the
        daily XP, the streak shown, the reset time, the ISO week), so it is built once per
        state and day and shared by the reads until :meth:`apply` changes the state or the
        day turns. The reply is shared: callers read it, they do not change it."""
        now = self.clock.now()
        today = utc_day(now)
        cached = self._view
        if cached is not None and cached[0] == today and cached[1] is self.state:
            return cached[2]
        view = self._profile_view(now, today)
        self._view = (today, self.state, view)
        return view

    def _profile_view(self, now: dt.datetime, today: dt.date) -> dict[str, Any]:
        state = self.state
        day = state["daily_xp_day"]
        daily = state["daily_xp_earned"] if day is not None and today.isoformat() <= day else 0
        streak = _streak(state["streak"])
        return {
            "user_id": state["user_id"], "total_xp": state["total_xp"],
            "current_level": state["current_level"],
            "xp_to_next_level": state["xp_to_next_level"], "daily_xp_earned": daily,
            "daily_xp_cap": self.table.daily_cap,
            "daily_xp_reset_at": format_timestamp(next_utc_midnight(now)),
            "streak": {"current": current_streak_on(streak, today), "longest": streak.longest,
                       "last_activity_at": state["last_activity_at"],
                       "freezes_available": streak.freezes_available},
            "achievements": list(state["achievements"]),
            "featured_achievements": list(state["featured_achievements"]),
            "counters": dict(state["counters"]),
            "weekly_xp": (state["weekly"]["xp"]
                          if state["weekly"] and state["weekly"]["week"] == iso_week(now) else 0),
            "leaderboard_opt_out": state["leaderboard_opt_out"],
            "updated_at": state["updated_at"],
        }  # fmt: skip

    @handler
    def get_quests(self, msg: GetQuests) -> list[dict[str, Any]]:
        rows = quest_progress(QuestState.from_snapshot(self.state["quests"]), self.clock.now())
        return [
            {"quest_id": row.quest.id, "title": row.quest.title, "period": row.quest.period,
             "period_id": row.period_id, "counter": row.quest.counter, "target": row.quest.target,
             "progress": row.progress, "completed": row.completed,
             "xp_reward": row.quest.xp_reward, "resets_at": format_timestamp(row.resets_at)}
            for row in rows
        ]  # fmt: skip

    @handler
    async def get_xp_transactions(self, msg: GetXpTransactions) -> dict[str, Any]:
        """A page of transactions, newest first; the cursor is ``<journal seq>:<index>``."""
        limit = msg.limit
        if type(limit) is not int or not 1 <= limit <= MAX_TRANSACTIONS_PAGE:
            return {"error": f"limit must be an int in 1..{MAX_TRANSACTIONS_PAGE}, got {limit!r}"}
        bound, skip = self.seq, 0
        if msg.cursor is not None:
            seq, sep, position = msg.cursor.partition(":")
            if not (sep and seq.isdigit() and position.isdigit()):
                return {"error": f"cursor {msg.cursor!r:.60} is not a next_cursor of this list"}
            bound, skip = int(seq), int(position)
        items: list[dict[str, Any]] = []
        while bound > 0:
            page = await self.store.find(
                JOURNAL,
                {"actor_id": self.journal_id, "event_type": APPLIED, "seq": {"$lte": bound}},
                sort=[("seq", -1)], limit=limit,
            )
            for doc in page.items:
                newest_first = doc["data"]["transactions"][::-1]
                start = skip if doc["seq"] == bound else 0
                for index in range(start, len(newest_first)):
                    if len(items) == limit:
                        return {"items": items, "next_cursor": f"{doc['seq']}:{index}"}
                    items.append(newest_first[index])
            if len(page.items) < limit:
                break
            bound, skip = page.items[-1]["seq"] - 1, 0
        return {"items": items, "next_cursor": None}

    # -- writes ------------------------------------------------------------------------------------
    @handler
    async def apply_event(self, msg: ApplyEvent) -> dict[str, Any]:
        envelope = msg.envelope
        user = self.ctx.id.key
        try:
            event_id, event_type = envelope.get("event_id"), envelope.get("event_type")
            if not isinstance(event_id, str) or not event_id:
                raise InvalidEvent("event_id", f"must be a non-empty string, got {event_id!r:.60}")
            if not isinstance(event_type, str):
                raise InvalidEvent("event_type", f"must be a string, got {event_type!r:.60}")
            payload = envelope.get("payload")
            if not isinstance(payload, Mapping):
                raise InvalidEvent("payload", f"must be an object, got {payload!r:.60}")
            mine = [c for c in credits(event_type, event_id, payload) if c.user_id == user]
            at = event_time(envelope, self.clock.now())
        except InvalidEvent as exc:
            self.ctx.log.warning("invalid domain event ignored", actor=str(self.ctx.id),
                                 event_id=envelope.get("event_id"), error=str(exc))
            return {"status": "invalid", "error": str(exc)}
        if not mine:
            return {"status": "ignored", "total_xp": self.state["total_xp"]}
        credit = mine[0]
        if credit.key in self.state["recent_event_ids"]:
            return {"status": "duplicate", "total_xp": self.state["total_xp"]}
        gain = self._gain_now(credit, at, envelope)
        if not await self.persist([gain.record], event_id=credit.key, outbox=gain.outbox):
            return {"status": "duplicate", "total_xp": self.state["total_xp"]}
        await self._announce(gain, credit.key, at)
        return {"status": "applied", "xp": gain.xp, "total_xp": self.state["total_xp"],
                "level": self.state["current_level"], "events": len(gain.outbox)}

    @handler
    async def grant_achievement(self, msg: GrantAchievement) -> dict[str, Any]:
        achievement = next((a for a in ACHIEVEMENTS if a.id == msg.achievement_id), None)
        if achievement is None:
            return {"status": "invalid",
                    "error": f"achievement_id {msg.achievement_id!r:.60} is not in the catalog"}
        if not isinstance(msg.cause_id, str) or not msg.cause_id:
            return {"status": "invalid",
                    "error": f"cause_id must be a non-empty string, got {msg.cause_id!r:.60}"}
        key = f"grant:{achievement.id}:{msg.cause_id}"
        if key in self.state["recent_event_ids"]:
            return {"status": "duplicate", "total_xp": self.state["total_xp"]}
        if achievement.id in self.state["achievements"]:
            return {"status": "already_unlocked", "total_xp": self.state["total_xp"]}
        at = msg.at if msg.at is not None else self.clock.now()
        credit = Credit(user_id=self.ctx.id.key, reason=None, key=key,
                        entity_type="achievement", entity_id=achievement.id)
        source = {"event_id": key, "event_type": "gamification.achievement.granted"}
        gain = self._gain_now(credit, at, source, granted=(achievement,))
        if not await self.persist([gain.record], event_id=key, outbox=gain.outbox):
            return {"status": "duplicate", "total_xp": self.state["total_xp"]}
        await self._announce(gain, key, at)
        return {"status": "applied", "xp": gain.xp, "total_xp": self.state["total_xp"],
                "achievements": list(self.state["achievements"])}

    def _gain_now(self, credit: Credit, at: dt.datetime, source: Mapping[str, Any],
              granted: Sequence[AchievementDef] = ()) -> _Gain:
        """``_gain`` on the current state, from its parsed quests and streak when held; the
        ones the gain produces are held for the next one (they are the state's once it is
        persisted: ``apply`` installs ``record["quests"]`` and ``record["streak"]`` themselves,
        and an unchanged streak keeps its document)."""
        state, held, held_streak = self.state, self._quests, self._held_streak
        quests = held[1] if held is not None and held[0] is state["quests"] else None
        streak = (held_streak[1] if held_streak is not None and held_streak[0] is state["streak"]
                  else None)  # fmt: skip
        gain = _gain(state, credit, at, self.table, source, self.ctx.system.node_name,
                     granted=granted, quests=quests, streak=streak)
        self._quests = (gain.record["quests"], gain.quests)
        changed = gain.record["streak"]
        self._held_streak = (state["streak"] if changed is None else changed, gain.streak)
        return gain

    async def _announce(self, gain: _Gain, key: str, at: dt.datetime) -> None:
        user, state = self.ctx.id.key, self.state
        if gain.xp > 0:
            scores = [("global", state["total_xp"])]
            if gain.weekly is not None:
                scores.append((f"weekly:{gain.weekly['week']}", gain.weekly["xp"]))
            scores.extend((area_board(area), xp) for area, xp in gain.areas.items())
            for board, score in scores:
                await self._tell_board(board, SetScore(
                    user_id=user, score=score, event_id=f"score:{user}:{key}", at=at,
                    version=self.seq, opted_out=state["leaderboard_opt_out"]))
        pubsub: Any = self.ctx.system.extensions.get("pubsub")
        if pubsub is None or not gain.outbox:
            return
        topic = notifications_topic(user)
        if not pubsub.may_reach(topic):  # nobody listening (embedded, no socket): build nothing
            return
        for event in gain.outbox:
            try:
                await pubsub.publish(topic, event.to_dict())
            except Exception as exc:  # fire-and-forget; the outbox holds the durable copy
                self.ctx.log.warning("notification publish failed", topic=topic, error=repr(exc))

    async def _tell_board(self, board: str, msg: SetScore | OptOut) -> None:
        try:
            await self.ctx.ref(LEADERBOARD_KIND, board).tell(msg)
        except TekTreeError as exc:  # no leaderboard kind here: boards are derived data
            self.ctx.log.warning("leaderboard update not sent", board=board, error=str(exc))

    @handler
    async def set_featured(self, msg: SetFeatured) -> dict[str, Any]:
        try:
            chosen = choose_featured(set(self.state["achievements"]), list(msg.ids))
        except (FeaturedAchievementError, TypeError, ValueError) as exc:
            return {"error": str(exc),
                    "achievement_id": getattr(exc, "achievement_id", None)}
        if list(chosen) != self.state["featured_achievements"]:
            await self.persist([{"type": FEATURED, "ids": list(chosen)}],
                               event_id=self._message_id())
        return {"featured_achievements": list(self.state["featured_achievements"])}

    @handler
    async def set_leaderboard_opt_out(self, msg: SetLeaderboardOptOut) -> dict[str, Any]:
        opted_out = bool(msg.opted_out)
        if opted_out != self.state["leaderboard_opt_out"]:
            await self.persist([{"type": OPTED_OUT, "opted_out": opted_out}],
                               event_id=self._message_id())
        boards = {"global", f"weekly:{iso_week(self.clock.now())}"}
        if self.state["weekly"] is not None:
            boards.add(f"weekly:{self.state['weekly']['week']}")
        boards.update(area_board(area) for area in self.state.get("area_xp") or {})
        for board in sorted(boards):
            await self._tell_board(board, OptOut(user_id=self.ctx.id.key, opted_out=opted_out,
                                                 version=self.seq))
        return {"leaderboard_opt_out": self.state["leaderboard_opt_out"]}

    def _message_id(self) -> str:
        envelope = self.ctx.envelope
        return envelope.message_id if envelope is not None else f"local:{self.seq + 1}"
