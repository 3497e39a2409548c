"""The tier catalog: defaults, overrides from a file, errors naming the key, quota periods."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.rules.tiers import (
    DEFAULT_TIERS,
    QUOTA_KINDS,
    TIER_NAMES,
    TierError,
    load_tiers,
    quota_period,
    quota_resets_at,
    tiers_from_mapping,
)


def test_defaults_follow_the_seed_rate_limits() -> None:
    rates = {name: DEFAULT_TIERS[name].requests_per_minute for name in TIER_NAMES}
    assert rates == {"free": 100, "pro": 1_000, "team": 5_000, "enterprise": None}
    assert DEFAULT_TIERS.names() == TIER_NAMES


def test_every_limited_tier_has_every_quota_and_limits_grow_with_the_tier() -> None:
    for kind in QUOTA_KINDS:
        limits = [DEFAULT_TIERS[name].quota(kind) for name in ("free", "pro", "team")]
        assert all(isinstance(limit, int) and limit > 0 for limit in limits)
        assert limits == sorted(limits) and len(set(limits)) == 3
        assert DEFAULT_TIERS["enterprise"].quota(kind) is None


def test_bucket_allows_twice_the_rate_for_ten_seconds() -> None:
    free = DEFAULT_TIERS["free"]
    rate = free.refill_per_second
    capacity = free.bucket_capacity
    assert rate is not None and capacity is not None
    # 10 s at 2x the rate drains exactly what the bucket holds beyond one second's worth,
    # plus what it refilled meanwhile.
    assert capacity - rate == pytest.approx(2 * rate * 10 - rate * 10)
    assert DEFAULT_TIERS["enterprise"].bucket_capacity is None


def test_a_file_overrides_some_keys_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "tiers.toml"
    path.write_text('[free]\nrequests_per_minute = 60\n[free.quotas]\nquestions = 3\n'
                    '[pro.quotas]\ninsights = "unlimited"\n')
    catalog = load_tiers(path)
    assert catalog["free"].requests_per_minute == 60
    assert catalog["free"].quota("questions") == 3
    assert catalog["free"].quota("insights") == DEFAULT_TIERS["free"].quota("insights")
    assert catalog["pro"].quota("insights") is None
    assert load_tiers(None) is DEFAULT_TIERS


@pytest.mark.parametrize(("data", "key", "words"), [
    ({"gold": {}}, "gold", "expected one of free, pro, team, enterprise"),
    ({"free": {"request_per_minute": 5}}, "free.request_per_minute", "requests_per_minute"),
    ({"free": {"quotas": {"question": 1}}}, "free.quotas.question", "did you mean 'questions'"),
    ({"free": {"quotas": {"questions": -1}}}, "free.quotas.questions", "got -1"),
    ({"free": {"requests_per_minute": 0}}, "free.requests_per_minute", "> 0"),
    ({"pro": {"burst_multiplier": 0.5}}, "pro.burst_multiplier", ">= 1.0"),
    ({"pro": {"quotas": {"insights": True}}}, "pro.quotas.insights", "got True"),
    ({"team": 3}, "team", "expected a table"),
])  # fmt: skip
def test_bad_catalogs_name_the_key_and_the_rule(data: dict[str, object], key: str,
                                                words: str) -> None:
    with pytest.raises(TierError) as info:
        tiers_from_mapping(data)
    assert info.value.key == key
    assert words in str(info.value)


def test_bad_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(TierError, match="tiers file not found"):
        load_tiers(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[free\n")
    with pytest.raises(TierError, match="not valid TOML"):
        load_tiers(broken)


def test_unknown_tier_and_quota_kind_lookups_are_errors() -> None:
    with pytest.raises(TierError, match="unknown tier"):
        DEFAULT_TIERS["gold"]
    with pytest.raises(TierError, match="unknown quota kind"):
        DEFAULT_TIERS["free"].quota("answers")


@given(st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2199, 12, 31),
                    timezones=st.just(dt.UTC)))
def test_a_period_resets_at_the_first_instant_of_the_next_month(at: dt.datetime) -> None:
    resets = quota_resets_at(at)
    assert resets > at
    assert resets.day == 1 and resets.time() == dt.time(0)
    assert quota_period(resets) != quota_period(at)
    assert quota_period(resets - dt.timedelta(microseconds=1)) == quota_period(at)
