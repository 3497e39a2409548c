"""XP: the table, the daily cap (exact at 00:00 UTC), exempt reasons and idempotent awards."""

from __future__ import annotations

import importlib
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta, timezone

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import actors.rules
from actors.rules.streaks import STREAK_MILESTONE_DAYS
from actors.rules.xp import (
    DEFAULT_CAP_EXEMPT,
    DEFAULT_XP_TABLE,
    REWARD_REASONS,
    Award,
    XpLedger,
    XpReason,
    XpTable,
    XpTableError,
    award,
    streak_milestone_reason,
    transaction_id_for,
)

T0 = datetime(2025, 12, 16, tzinfo=UTC)  # a UTC midnight
DAY_US = 86_400 * 1_000_000
TABLE_REASONS = [r for r in XpReason if r not in REWARD_REASONS]
CAPPED = [r for r in TABLE_REASONS if r not in DEFAULT_CAP_EXEMPT]


def _ledger() -> XpLedger:
    return XpLedger(user_id="usr_abc123")


def _award(ledger: XpLedger, reason: XpReason, event_id: str, at: datetime = T0,
           table: XpTable = DEFAULT_XP_TABLE) -> Award:
    amount = 40 if reason in REWARD_REASONS else None
    return award(ledger, reason=reason, event_id=event_id, at=at, table=table, amount=amount)


# -- the table ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reason", "xp"),
    [
        (XpReason.WELCOME, 50), (XpReason.QUESTION_POSTED, 5), (XpReason.ANSWER_SUBMITTED, 10),
        (XpReason.ANSWER_UPVOTED, 10), (XpReason.QUESTION_UPVOTED, 5),
        (XpReason.ANSWER_ACCEPTED, 25), (XpReason.ANSWER_ACCEPTED_ASKER, 5),
        (XpReason.INSIGHT_PUBLISHED, 25), (XpReason.COMMENT_ADDED, 2),
        (XpReason.CONTENT_LIKED, 2), (XpReason.STREAK_7_DAYS, 50),
        (XpReason.STREAK_30_DAYS, 150), (XpReason.STREAK_100_DAYS, 500),
        (XpReason.STREAK_365_DAYS, 1_500),
    ],
)
def test_default_table(reason: XpReason, xp: int) -> None:
    assert DEFAULT_XP_TABLE.amount_for(reason) == xp


def test_defaults_for_cap_and_exemptions() -> None:
    assert DEFAULT_XP_TABLE.daily_cap == 500
    assert DEFAULT_XP_TABLE.is_cap_exempt(XpReason.ANSWER_ACCEPTED)
    assert not DEFAULT_XP_TABLE.is_cap_exempt(XpReason.WELCOME)
    assert DEFAULT_XP_TABLE.cap_exempt == DEFAULT_CAP_EXEMPT == {
        XpReason.ANSWER_ACCEPTED, XpReason.ANSWER_ACCEPTED_ASKER, XpReason.STREAK_7_DAYS,
        XpReason.STREAK_30_DAYS, XpReason.STREAK_100_DAYS, XpReason.STREAK_365_DAYS,
        XpReason.ACHIEVEMENT_UNLOCKED, XpReason.QUEST_COMPLETED,
    }


def test_every_table_reason_has_a_setting_of_its_name() -> None:
    settings = {f.name for f in attrs.fields(XpTable)}
    assert settings - {"daily_cap", "cap_exempt", "idempotency_window"} == {
        r.value for r in TABLE_REASONS
    }


def test_every_streak_milestone_has_a_bonus_reason() -> None:
    reasons = [streak_milestone_reason(days) for days in STREAK_MILESTONE_DAYS]
    assert reasons == [XpReason.STREAK_7_DAYS, XpReason.STREAK_30_DAYS,
                       XpReason.STREAK_100_DAYS, XpReason.STREAK_365_DAYS]
    assert all(r in DEFAULT_CAP_EXEMPT for r in reasons)
    with pytest.raises(ValueError, match=r"no streak milestone at 8 days; milestones are \[7, "):
        streak_milestone_reason(8)


def test_from_mapping_overrides_defaults_and_round_trips() -> None:
    table = XpTable.from_mapping(
        {"welcome": 100, "daily_cap": 300, "cap_exempt": ["answer_accepted", "welcome"]}
    )
    assert table.welcome == 100 and table.daily_cap == 300 and table.comment_added == 2
    assert table.cap_exempt == {XpReason.ANSWER_ACCEPTED, XpReason.WELCOME}
    assert XpTable.from_mapping(table.as_mapping()) == table
    assert XpTable.from_mapping({}) == DEFAULT_XP_TABLE


@pytest.mark.parametrize(
    ("settings", "key", "text"),
    [
        ({"welcom": 10}, "welcom", "unknown setting; did you mean 'welcome'?"),
        ({"bogus": 1}, "bogus", "unknown setting; known: welcome, "),
        ({"welcome": -1}, "welcome", "must be >= 0, got -1"),
        ({"welcome": "50"}, "welcome", "must be an int, got '50'"),
        ({"welcome": True}, "welcome", "must be an int, got True"),
        ({"daily_cap": 2.5}, "daily_cap", "must be an int, got 2.5"),
        ({"idempotency_window": 0}, "idempotency_window", "must be >= 1, got 0"),
        ({"cap_exempt": ["answer_acepted"]}, "cap_exempt", "is not an XP reason"),
        ({"cap_exempt": "welcome"}, "cap_exempt", "must be a list of XP reason names"),
        ({"cap_exempt": 3}, "cap_exempt", "must be a list of XP reason names"),
    ],
)
def test_from_mapping_names_the_bad_key_and_value(settings: dict[str, object], key: str,
                                                  text: str) -> None:
    with pytest.raises(XpTableError, match=f"XP table setting '{key}': ") as caught:
        XpTable.from_mapping(settings)
    assert text in str(caught.value)
    assert caught.value.key == key
    given = settings[key]
    # a bad list item is reported by itself
    assert caught.value.value == (given[0] if isinstance(given, list) else given)


def test_from_mapping_wants_a_mapping() -> None:
    with pytest.raises(XpTableError, match="must be a mapping"):
        XpTable.from_mapping([("welcome", 1)])  # type: ignore[arg-type]


def test_reward_reasons_have_no_table_amount() -> None:
    with pytest.raises(ValueError, match="achievement's or quest's xp_reward"):
        DEFAULT_XP_TABLE.amount_for(XpReason.ACHIEVEMENT_UNLOCKED)


# -- award basics ------------------------------------------------------------------------------
def test_an_award_returns_the_new_ledger_and_the_journal_record() -> None:
    at = T0 + timedelta(hours=14)
    result = award(_ledger(), reason=XpReason.INSIGHT_PUBLISHED, event_id="evt_1", at=at,
                   table=DEFAULT_XP_TABLE)
    assert (result.requested, result.amount, result.capped_amount) == (25, 25, 0)
    assert not result.duplicate and not result.capped
    assert result.state == XpLedger(user_id="usr_abc123", total_xp=25, day=date(2025, 12, 16),
                                    daily_xp_earned=25, recent_event_ids=("evt_1",))
    assert result.state.daily_xp_reset_at == datetime(2025, 12, 17, tzinfo=UTC)
    txn = result.transaction
    assert txn is not None
    assert txn.as_document() == {
        "transaction_id": "xp_txn:usr_abc123:evt_1",
        "user_id": "usr_abc123",
        "amount": 25,
        "requested_amount": 25,
        "capped_amount": 0,
        "capped": False,
        "source": "insight_published",
        "source_event_id": "evt_1",
        "daily_total": 25,
        "daily_cap": 500,
        "cap_exempt": False,
        "cap_day": "2025-12-16",
        "timestamp": at,
    }
    assert txn.transaction_id == transaction_id_for("usr_abc123", "evt_1")


def test_the_input_ledger_is_left_untouched() -> None:
    ledger = _ledger()
    _award(ledger, XpReason.WELCOME, "e")
    assert ledger == _ledger()


def test_reward_reasons_take_their_amount_and_others_refuse_one() -> None:
    result = award(_ledger(), reason=XpReason.QUEST_COMPLETED, event_id="quest:q1:2025-W50",
                   at=T0, table=DEFAULT_XP_TABLE, amount=700)
    assert result.amount == 700 and result.state.daily_xp_earned == 0  # exempt
    with pytest.raises(ValueError, match="needs amount="):
        award(_ledger(), reason=XpReason.ACHIEVEMENT_UNLOCKED, event_id="a", at=T0,
              table=DEFAULT_XP_TABLE)
    with pytest.raises(ValueError, match="needs amount="):
        award(_ledger(), reason=XpReason.ACHIEVEMENT_UNLOCKED, event_id="a", at=T0,
              table=DEFAULT_XP_TABLE, amount=-1)
    with pytest.raises(ValueError, match="takes its amount from the XP table"):
        award(_ledger(), reason=XpReason.WELCOME, event_id="a", at=T0, table=DEFAULT_XP_TABLE,
              amount=5)


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"reason": "welcomed"}, ValueError, "award\\(reason=\\) must be an XpReason"),
        ({"event_id": ""}, ValueError, "event_id\\) must be a non-empty str"),
        ({"at": datetime(2025, 1, 1)}, ValueError, "timezone-aware"),
        ({"at": date(2025, 1, 1)}, TypeError, "aware datetime"),
    ],
)
def test_bad_award_arguments_are_named(kwargs: dict[str, object], error: type,
                                       text: str) -> None:
    call: dict[str, object] = {"reason": XpReason.WELCOME, "event_id": "e", "at": T0,
                               "table": DEFAULT_XP_TABLE, **kwargs}
    with pytest.raises(error, match=text):
        award(_ledger(), **call)  # type: ignore[arg-type]


def test_a_reason_given_as_its_string_value_is_accepted() -> None:
    result = award(_ledger(), reason="welcome", event_id="e", at=T0,  # type: ignore[arg-type]
                   table=DEFAULT_XP_TABLE)
    assert result.reason is XpReason.WELCOME and result.amount == 50


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({"user_id": ""}, "user_id must be a non-empty str"),
        ({"user_id": "u", "total_xp": -1}, "total_xp must be an int >= 0, got -1"),
        ({"user_id": "u", "daily_xp_earned": 5}, "needs the day it was earned on"),
        ({"user_id": "u", "recent_event_ids": ["", "x"]}, "must hold non-empty strs"),
        ({"user_id": "u", "day": T0}, "must be a date"),
    ],
)
def test_ledger_rejects_impossible_values(fields: dict[str, object], text: str) -> None:
    with pytest.raises((ValueError, TypeError), match=text):
        XpLedger(**fields)  # type: ignore[arg-type]


# -- the daily cap -----------------------------------------------------------------------------
amounts = st.integers(min_value=0, max_value=300)


@st.composite
def tables(draw: st.DrawFn) -> XpTable:
    settings: dict[str, object] = {r.value: draw(amounts) for r in TABLE_REASONS}
    settings["daily_cap"] = draw(st.integers(min_value=0, max_value=700))
    settings["cap_exempt"] = draw(st.sets(st.sampled_from(list(XpReason))))
    return XpTable.from_mapping(settings)


reasons = st.sampled_from(list(XpReason))
times_in_a_day = st.integers(min_value=0, max_value=DAY_US - 1).map(
    lambda us: T0 + timedelta(microseconds=us)
)


@given(tables(), st.lists(st.tuples(reasons, times_in_a_day, amounts), max_size=80))
def test_daily_cap_is_never_exceeded_within_a_utc_day(
    table: XpTable, steps: list[tuple[XpReason, datetime, int]]
) -> None:
    ledger = _ledger()
    capped_requested = capped_granted = total = 0
    for i, (reason, at, reward) in enumerate(steps):
        result = award(ledger, reason=reason, event_id=f"e{i}", at=at, table=table,
                       amount=reward if reason in REWARD_REASONS else None)
        assert result.amount + result.capped_amount == result.requested
        if reason in table.cap_exempt:
            assert result.amount == result.requested and not result.capped
        else:
            capped_requested += result.requested
            capped_granted += result.amount
            if result.capped:  # a cut award leaves the day exactly full
                assert result.state.daily_xp_earned == table.daily_cap
        assert result.state.daily_xp_earned == capped_granted <= table.daily_cap
        total += result.amount
        ledger = result.state
    # Greedy first-come partial awards hand out exactly what fits.
    assert capped_granted == min(table.daily_cap, capped_requested)
    assert ledger.total_xp == total


@given(tables(), st.lists(st.tuples(reasons, st.integers(0, 5 * DAY_US)), max_size=120),
       st.booleans())
def test_no_day_is_ever_charged_more_than_the_cap(
    table: XpTable, steps: list[tuple[XpReason, int]], in_order: bool
) -> None:
    if in_order:
        steps = sorted(steps, key=lambda step: step[1])
    ledger = _ledger()
    charged: dict[date, int] = defaultdict(int)
    requested: dict[date, int] = defaultdict(int)
    for i, (reason, us) in enumerate(steps):
        at = T0 + timedelta(microseconds=us)
        result = _award(ledger, reason, f"e{i}", at, table)
        txn = result.transaction
        assert txn is not None
        assert txn.cap_day >= at.date()  # a late event is charged to the latest day seen
        if not txn.cap_exempt:
            charged[txn.cap_day] += txn.amount
            requested[txn.cap_day] += txn.requested_amount
            assert txn.daily_total == charged[txn.cap_day]
        ledger = result.state
    assert all(total <= table.daily_cap for total in charged.values())
    if in_order:  # in time order every day starts afresh at its midnight
        assert all(charged[day] == min(table.daily_cap, requested[day]) for day in charged)


def _fill_the_cap(ledger: XpLedger, at: datetime) -> XpLedger:
    for i in range(50):  # 50 x 10 XP
        ledger = _award(ledger, XpReason.ANSWER_SUBMITTED, f"fill-{at.isoformat()}-{i}", at).state
    assert ledger.daily_xp_earned == 500
    return ledger


def test_the_cap_resets_exactly_at_midnight_utc() -> None:
    last_us = T0 + timedelta(days=1, microseconds=-1)  # 23:59:59.999999
    ledger = _fill_the_cap(_ledger(), T0)
    capped = _award(ledger, XpReason.ANSWER_SUBMITTED, "late", last_us)
    assert (capped.amount, capped.capped_amount) == (0, 10)
    fresh = _award(capped.state, XpReason.ANSWER_SUBMITTED, "fresh", T0 + timedelta(days=1))
    assert (fresh.amount, fresh.capped_amount) == (10, 0)
    assert fresh.state.day == date(2025, 12, 17) and fresh.state.daily_xp_earned == 10


def test_the_day_is_the_utc_day_whatever_the_offset() -> None:
    ledger = _fill_the_cap(_ledger(), T0)
    evening_in_new_york = datetime(2025, 12, 16, 19, 0, tzinfo=timezone(timedelta(hours=-5)))
    result = _award(ledger, XpReason.ANSWER_SUBMITTED, "ny", evening_in_new_york)
    assert result.amount == 10  # 00:00 UTC on the 17th: a new day
    assert result.transaction is not None
    assert result.transaction.created_at == datetime(2025, 12, 17, tzinfo=UTC)


def test_a_partial_award_fills_the_cap_and_notes_the_rest() -> None:
    ledger = _ledger()
    for i in range(49):
        ledger = _award(ledger, XpReason.ANSWER_SUBMITTED, f"a{i}").state
    ledger = _award(ledger, XpReason.QUESTION_POSTED, "q").state  # 495
    result = _award(ledger, XpReason.INSIGHT_PUBLISHED, "i")
    assert (result.requested, result.amount, result.capped_amount) == (25, 5, 20)
    assert result.capped and result.transaction is not None and result.transaction.capped
    assert result.transaction.daily_total == 500


def test_exempt_reasons_are_paid_in_full_on_a_capped_day_and_use_none_of_it() -> None:
    ledger = _fill_the_cap(_ledger(), T0)
    for reason in (XpReason.ANSWER_ACCEPTED, XpReason.ANSWER_ACCEPTED_ASKER,
                   XpReason.STREAK_365_DAYS):
        result = _award(ledger, reason, f"x-{reason}")
        assert result.amount == DEFAULT_XP_TABLE.amount_for(reason)
        assert result.state.daily_xp_earned == 500
        ledger = result.state
    fresh = _fill_the_cap(_ledger(), T0)
    assert ledger.total_xp == fresh.total_xp + 25 + 5 + 1_500


def test_exempt_xp_does_not_use_up_the_cap() -> None:
    ledger = _award(_ledger(), XpReason.STREAK_100_DAYS, "m").state
    assert ledger.daily_xp_earned == 0
    assert _fill_the_cap(ledger, T0).total_xp == 1_000


def test_a_late_event_is_charged_to_the_latest_day() -> None:
    today = T0 + timedelta(days=1, hours=9)
    ledger = _fill_the_cap(_ledger(), today)
    late = _award(ledger, XpReason.ANSWER_SUBMITTED, "from-yesterday", T0 + timedelta(hours=22))
    assert (late.amount, late.capped_amount) == (0, 10)
    assert late.transaction is not None and late.transaction.cap_day == date(2025, 12, 17)
    assert late.state.day == date(2025, 12, 17)


def test_a_zero_cap_pays_only_exempt_reasons() -> None:
    table = XpTable(daily_cap=0)
    assert _award(_ledger(), XpReason.WELCOME, "w", table=table).amount == 0
    assert _award(_ledger(), XpReason.ANSWER_ACCEPTED, "a", table=table).amount == 25


# -- idempotency -------------------------------------------------------------------------------
event_ids = st.sampled_from([f"evt_{i}" for i in range(12)])


@given(st.lists(st.tuples(event_ids, reasons, times_in_a_day), max_size=100))
def test_xp_is_never_awarded_twice_for_one_event_id(
    steps: list[tuple[str, XpReason, datetime]],
) -> None:
    table = XpTable(daily_cap=10**9)  # so a capped 0 cannot hide a second award
    ledger = _ledger()
    paid: dict[str, int] = {}
    for event_id, reason, at in steps:
        result = _award(ledger, reason, event_id, at, table)
        if event_id in paid:
            assert result.duplicate and result.amount == 0 and result.transaction is None
            assert result.state is ledger
        else:
            assert not result.duplicate and result.transaction is not None
            paid[event_id] = result.amount
        ledger = result.state
    assert ledger.total_xp == sum(paid.values())
    assert set(ledger.recent_event_ids) == set(paid)


def _apply(ledger: XpLedger, journal: set[str], result: Award) -> XpLedger:
    """What the actor does: append to the journal (unique transaction_id), then keep the state."""
    if result.transaction is None:
        return ledger
    if result.transaction.transaction_id in journal:  # the store's duplicate-key error
        return ledger
    journal.add(result.transaction.transaction_id)
    return result.state


@given(st.integers(min_value=1, max_value=4),
       st.lists(st.tuples(event_ids, reasons, st.integers(0, 3 * DAY_US)), max_size=150))
def test_window_plus_journal_never_pay_an_event_twice_for_all_time(
    window: int, steps: list[tuple[str, XpReason, int]]
) -> None:
    table = XpTable(daily_cap=10**9, idempotency_window=window)
    ledger, journal = _ledger(), set[str]()
    paid: dict[str, int] = {}
    for event_id, reason, us in sorted(steps, key=lambda s: s[2]):
        result = _award(ledger, reason, event_id, T0 + timedelta(microseconds=us), table)
        new = _apply(ledger, journal, result)
        if new is not ledger:
            assert event_id not in paid
            paid[event_id] = result.amount
        ledger = new
        assert len(ledger.recent_event_ids) <= window
    assert ledger.total_xp == sum(paid.values())
    assert journal == {transaction_id_for("usr_abc123", e) for e in paid}


def test_an_id_older_than_the_window_is_left_to_the_journal() -> None:
    table = XpTable(idempotency_window=2)
    ledger = _ledger()
    first = _award(ledger, XpReason.WELCOME, "e1", table=table)
    ledger = first.state
    for event_id in ("e2", "e3"):
        ledger = _award(ledger, XpReason.COMMENT_ADDED, event_id, table=table).state
    assert ledger.recent_event_ids == ("e2", "e3")
    again = _award(ledger, XpReason.WELCOME, "e1", table=table)
    assert not again.duplicate  # the in-memory window has forgotten e1 ...
    assert again.transaction is not None and first.transaction is not None
    # ... but its journal key is the same, so the unique index rejects it.
    assert again.transaction.transaction_id == first.transaction.transaction_id


def test_a_fully_capped_event_is_remembered_so_redelivery_tomorrow_pays_nothing() -> None:
    ledger = _fill_the_cap(_ledger(), T0)
    capped = _award(ledger, XpReason.INSIGHT_PUBLISHED, "evt_capped", T0 + timedelta(hours=1))
    assert capped.amount == 0 and capped.transaction is not None
    assert capped.transaction.amount == 0 and capped.transaction.capped_amount == 25
    redelivered = _award(capped.state, XpReason.INSIGHT_PUBLISHED, "evt_capped",
                         T0 + timedelta(days=1))
    assert redelivered.duplicate and redelivered.amount == 0


def test_one_event_pays_one_user_once_even_for_two_reasons() -> None:
    # A self-accepted answer: both halves of knowledge.answer.accepted go to the same user.
    first = _award(_ledger(), XpReason.ANSWER_ACCEPTED, "evt_accept")
    second = _award(first.state, XpReason.ANSWER_ACCEPTED_ASKER, "evt_accept")
    assert first.amount == 25 and second.duplicate and second.state.total_xp == 25


# -- the package surface -----------------------------------------------------------------------
def test_rules_package_re_exports_clock_xp_levels_and_streaks() -> None:
    names = list(actors.rules.__all__)
    assert len(names) == len(set(names))
    assert [n for n in names if not hasattr(actors.rules, n)] == []
    for module in ("clock", "xp", "levels", "streaks"):
        mod = importlib.import_module(f"actors.rules.{module}")
        assert set(mod.__all__) <= set(names), module
        for name in mod.__all__:
            assert getattr(actors.rules, name) is getattr(mod, name)
