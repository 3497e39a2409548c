"""Weighted rendezvous placement: deterministic, minimal movement, proportional to weight."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tektree.cluster.placement import Member, NoEligibleMember, home, moved, score

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
member_sets = st.lists(names, min_size=1, max_size=12, unique=True).map(
    lambda ns: [Member(name=n, incarnation="i") for n in ns]
)
keys = st.lists(st.text(max_size=30), min_size=1, max_size=60, unique=True)


def members(*spec: str | tuple[str, float]) -> list[Member]:
    out = []
    for item in spec:
        name, weight = (item, 1.0) if isinstance(item, str) else item
        out.append(Member(name=name, weight=weight, incarnation="i"))
    return out


@given(member_sets, keys, st.randoms(use_true_random=False))
def test_home_ignores_the_order_of_members(ms: list[Member], ks: list[str], rnd: object) -> None:
    shuffled = list(ms)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    for key in ks:
        assert home(key, ms) == home(key, shuffled)
        assert home(key, ms) in ms


def test_home_is_the_same_in_another_process() -> None:
    # No use of hash(): a fresh interpreter (new PYTHONHASHSEED) agrees on every key.
    ms = members("n1", "n2", ("n3", 2.5))
    sample = [f"user:{i}" for i in range(200)]
    here = [home(k, ms).name for k in sample]
    code = (
        "from tektree.cluster.placement import Member, home\n"
        "ms = [Member(name='n1'), Member(name='n2'), Member(name='n3', weight=2.5)]\n"
        "print(','.join(home(f'user:{i}', ms).name for i in range(200)))\n"
    )
    there = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True,
        env={"PYTHONHASHSEED": "12345"},
    ).stdout.strip().split(",")
    assert here == there


def test_scores_are_pinned() -> None:
    # A change of hash or formula would move every actor of a running cluster on upgrade.
    assert home("user:42", members("n1", "n2", "n3")).name == _pinned_home
    assert score(Member(name="n1"), "user:42") == pytest.approx(_pinned_score, rel=1e-12)


@given(member_sets.filter(lambda ms: len(ms) >= 2), keys, st.data())
def test_removing_a_member_moves_only_its_keys(
    ms: list[Member], ks: list[str], data: st.DataObject
) -> None:
    gone = data.draw(st.sampled_from(ms))
    after = [m for m in ms if m != gone]
    changed = moved(ks, ms, after)
    assert changed == {k for k in ks if home(k, ms) == gone}


@given(member_sets, keys, names)
def test_adding_a_member_moves_only_keys_it_now_owns(
    ms: list[Member], ks: list[str], new_name: str
) -> None:
    if new_name in {m.name for m in ms}:
        return
    new = Member(name=new_name, incarnation="i")
    changed = moved(ks, ms, [*ms, new])
    assert changed == {k for k in ks if home(k, [*ms, new]) == new}


def test_adding_a_member_moves_about_one_nth_of_the_keys() -> None:
    before = members(*(f"n{i}" for i in range(4)))
    ks = [f"room:{i}" for i in range(20_000)]
    changed = moved(ks, before, [*before, Member(name="n4")])
    assert abs(len(changed) / len(ks) - 1 / 5) < 0.02


@pytest.mark.parametrize("weights", [(1.0, 2.0, 3.0), (1.0, 1.0, 4.0, 0.5), (5.0, 5.0)])
def test_weights_skew_the_distribution_proportionally(weights: tuple[float, ...]) -> None:
    ms = members(*((f"n{i}", w) for i, w in enumerate(weights)))
    counts = Counter(home(f"k{i}", ms).name for i in range(20_000))
    total = sum(weights)
    for i, weight in enumerate(weights):
        # sd of a share is below 0.0036 at 20k keys: 0.015 is > 4 sd
        assert abs(counts[f"n{i}"] / 20_000 - weight / total) < 0.015, counts


@given(member_sets, keys)
def test_role_restricts_the_candidates(ms: list[Member], ks: list[str]) -> None:
    with_role = [
        Member(name=m.name, roles={"game"} if i % 2 == 0 else {"web"}, incarnation="i")
        for i, m in enumerate(ms)
    ]
    gamers = [m for m in with_role if "game" in m.roles]
    for key in ks:
        chosen = home(key, with_role, role="game")
        assert "game" in chosen.roles
        assert chosen == home(key, gamers)  # the others simply do not take part


def test_no_member_with_the_role_names_the_role_and_the_roles() -> None:
    ms = [Member(name="n1", roles={"web"}), Member(name="n2")]
    with pytest.raises(NoEligibleMember, match=r"role 'game'.*n1: \['web'\], n2: \[\]") as info:
        home("k", ms, role="game")
    assert info.value.role == "game"
    assert info.value.roles == {"n1": frozenset({"web"}), "n2": frozenset()}


def test_no_members_at_all() -> None:
    with pytest.raises(NoEligibleMember, match="no live member to place 'k'"):
        home("k", [])


@settings(max_examples=50)
@given(st.floats(allow_nan=True, allow_infinity=True).filter(lambda w: not w > 0 or math.isinf(w)))
def test_weight_must_be_finite_and_positive(weight: float) -> None:
    with pytest.raises(ValueError, match="weight must be a finite number > 0"):
        Member(name="n1", weight=weight)


def test_member_rejects_an_empty_name_and_a_bare_str_of_roles() -> None:
    with pytest.raises(ValueError, match="name must be a non-empty str"):
        Member(name="")
    with pytest.raises(TypeError, match="roles=\\{'game'\\}"):
        Member(name="n1", roles="game")


_pinned_home = "n2"
_pinned_score = 0.9064261009525133
