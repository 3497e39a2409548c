"""The ``DocumentStore`` contract, run against every backend (see conftest's ``store``)."""

from __future__ import annotations

from typing import Any, Literal

import pytest
import trio

from tektree.persistence import (
    FILTER_OPERATORS,
    DocumentStore,
    DuplicateKeyError,
    IndexSpec,
    InvalidCursor,
    InvalidQuery,
    UnsupportedOperator,
)

PEOPLE: list[dict[str, Any]] = [
    {"_id": "a", "name": "ada", "age": 36, "team": "x", "stats": {"xp": 10}, "tags": []},
    {"_id": "b", "name": "bob", "age": 25, "team": "y", "stats": {"xp": 30}, "tags": []},
    {"_id": "c", "name": "cy", "age": 41, "team": "x", "stats": {"xp": 20}, "tags": []},
    {"_id": "d", "name": "di", "age": 25, "team": None, "stats": {"xp": 40}, "tags": []},
]


async def ids(store: DocumentStore, filter: dict[str, Any]) -> list[str]:
    page = await store.find("people", filter, sort=[("_id", 1)])
    return [d["_id"] for d in page.items]


async def test_insert_get_roundtrip(store: DocumentStore) -> None:
    doc = {"_id": "u1", "name": "ada", "nested": {"a": [1, 2, {"b": None}]}, "ok": True}
    assert await store.insert("users", doc) == "u1"
    assert await store.get("users", "u1") == doc
    assert await store.get("users", "missing") is None
    assert await store.get("never_written", "x") is None


async def test_insert_without_id_assigns_a_str_id(store: DocumentStore) -> None:
    source = {"name": "bob"}
    new_id = await store.insert("users", source)
    assert isinstance(new_id, str) and new_id
    assert source == {"name": "bob"}  # the caller's dict is not mutated
    assert await store.get("users", new_id) == {"_id": new_id, "name": "bob"}


async def test_insert_many_and_count(store: DocumentStore) -> None:
    assert await store.insert_many("people", PEOPLE) == ["a", "b", "c", "d"]
    assert await store.insert_many("people", []) == []
    assert await store.count("people") == 4
    assert await store.count("people", {"team": "x"}) == 2
    assert await store.count("nothing_here") == 0


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({"team": "x"}, ["a", "c"]),
        ({"team": {"$eq": "y"}}, ["b"]),
        ({"team": None}, ["d"]),
        ({"team": {"$ne": "x"}}, ["b", "d"]),
        ({"age": {"$gt": 25}}, ["a", "c"]),
        ({"age": {"$gte": 36, "$lt": 41}}, ["a"]),
        ({"age": {"$lte": 25}}, ["b", "d"]),
        ({"name": {"$in": ["ada", "di", "zed"]}}, ["a", "d"]),
        ({"team": {"$in": [None, "y"]}}, ["b", "d"]),
        ({"name": {"$nin": ["ada", "bob"]}}, ["c", "d"]),
        ({"stats.xp": {"$gte": 20}}, ["b", "c", "d"]),
        ({"stats.xp": 30, "age": 25}, ["b"]),
        ({"_id": {"$in": ["a", "c"]}}, ["a", "c"]),
        ({"age": {"$in": []}}, []),
        ({}, ["a", "b", "c", "d"]),
    ],
)
async def test_find_filters(
    store: DocumentStore, filter: dict[str, Any], expected: list[str]
) -> None:
    await store.insert_many("people", PEOPLE)
    assert await ids(store, filter) == expected
    assert await store.count("people", filter) == len(expected)


async def test_find_sort_and_limit(store: DocumentStore) -> None:
    await store.insert_many("people", PEOPLE)
    page = await store.find("people", sort=[("stats.xp", -1)], limit=2)
    assert [d["_id"] for d in page.items] == ["d", "b"]
    assert page.next_cursor is not None
    last = await store.find("people", sort=[("stats.xp", -1)], limit=2, after=page.next_cursor)
    assert [d["_id"] for d in last.items] == ["c", "a"]
    assert last.next_cursor is None


@pytest.mark.parametrize("direction", [1, -1])
async def test_pagination_with_ties_in_sort_keys(
    store: DocumentStore, direction: Literal[1, -1]
) -> None:
    docs = [{"_id": f"p{i:03d}", "score": i % 4, "kind": "k" if i % 5 else "z"} for i in range(37)]
    await store.insert_many("scores", docs)
    expected = [
        d["_id"]
        for d in sorted(docs, key=lambda d: (d["score"] * direction, d["_id"]))
        if d["kind"] == "k"
    ]
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        page = await store.find(
            "scores", {"kind": "k"}, sort=[("score", direction)], limit=4, after=cursor
        )
        assert len(page.items) <= 4
        seen.extend(d["_id"] for d in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected


async def test_pagination_over_missing_sort_values(store: DocumentStore) -> None:
    docs = [{"_id": f"m{i}", **({"rank": i} if i % 2 else {})} for i in range(9)]
    await store.insert_many("ranks", docs)
    directions: tuple[Literal[1, -1], ...] = (1, -1)
    for direction in directions:
        seen: list[str] = []
        cursor: str | None = None
        while True:
            page = await store.find("ranks", sort=[("rank", direction)], limit=2, after=cursor)
            seen.extend(d["_id"] for d in page.items)
            if (cursor := page.next_cursor) is None:
                break
        assert sorted(seen) == sorted(str(d["_id"]) for d in docs)
        assert len(seen) == len(docs)


async def test_bad_cursor_is_rejected(store: DocumentStore) -> None:
    await store.insert_many("people", PEOPLE)
    page = await store.find("people", sort=[("age", 1)], limit=1)
    assert page.next_cursor is not None
    with pytest.raises(InvalidCursor, match="made for sort"):
        await store.find("people", sort=[("name", 1)], limit=1, after=page.next_cursor)
    with pytest.raises(InvalidCursor):
        await store.find("people", limit=1, after="not-a-cursor!")


@pytest.mark.parametrize(
    ("filter", "operator"),
    [
        ({"name": {"$regex": "^a"}}, "$regex"),
        ({"$or": [{"a": 1}, {"b": 2}]}, "$or"),
        ({"tags": {"$elemMatch": {"x": 1}}}, "$elemMatch"),
        ({"age": {"$gt": 1, "$where": "x"}}, "$where"),
    ],
)
async def test_unsupported_filter_operator_is_named(
    store: DocumentStore, filter: dict[str, Any], operator: str
) -> None:
    with pytest.raises(UnsupportedOperator) as info:
        await store.find("people", filter)
    assert info.value.operator == operator
    assert set(info.value.supported) == FILTER_OPERATORS
    assert operator in str(info.value) and "$in" in str(info.value)
    with pytest.raises(UnsupportedOperator):
        await store.count("people", filter)
    with pytest.raises(UnsupportedOperator):
        await store.delete("people", filter)


async def test_unsupported_update_operator_is_named(store: DocumentStore) -> None:
    await store.insert("people", PEOPLE[0])
    with pytest.raises(UnsupportedOperator, match=r"'\$rename'.*\$addToSet"):
        await store.update("people", "a", {"$rename": {"name": "full_name"}})
    with pytest.raises(InvalidQuery, match="immutable"):
        await store.update("people", "a", {"$set": {"_id": "z"}})
    with pytest.raises(InvalidQuery, match="takes a number"):
        await store.update("people", "a", {"$inc": {"age": "1"}})
    with pytest.raises(InvalidQuery, match="field name"):
        await store.find("people", {"bad field": 1})
    with pytest.raises(InvalidQuery, match="collection name"):
        await store.insert("no-dashes", {"x": 1})
    assert await store.get("people", "a") == PEOPLE[0]


async def test_update_operators(store: DocumentStore) -> None:
    await store.insert_many("people", PEOPLE)
    matched = await store.update(
        "people",
        "a",
        {
            "$set": {"name": "Ada", "stats.level": 3},
            "$inc": {"age": 1, "stats.xp": 5, "visits": 1},
            "$push": {"tags": "new"},
            "$addToSet": {"roles": "admin"},
            "$unset": {"team": ""},
        },
    )
    assert matched == 1
    assert await store.get("people", "a") == {
        "_id": "a",
        "name": "Ada",
        "age": 37,
        "stats": {"xp": 15, "level": 3},
        "tags": ["new"],
        "roles": ["admin"],
        "visits": 1,
    }
    await store.update("people", "a", {"$addToSet": {"roles": "admin"}, "$push": {"tags": "new"}})
    doc = await store.get("people", "a")
    assert doc is not None and doc["roles"] == ["admin"] and doc["tags"] == ["new", "new"]


async def test_update_by_filter_counts_matches(store: DocumentStore) -> None:
    await store.insert_many("people", PEOPLE)
    assert await store.update("people", {"age": 25}, {"$set": {"young": True}}) == 2
    assert await ids(store, {"young": True}) == ["b", "d"]
    assert await store.update("people", {"age": 99}, {"$set": {"x": 1}}) == 0
    assert await store.update("people", "nobody", {"$set": {"x": 1}}) == 0
    assert await store.count("people") == 4


async def test_upsert_inserts_with_filter_fields(store: DocumentStore) -> None:
    assert await store.update("counters", "c1", {"$inc": {"n": 1}}, upsert=True) == 0
    assert await store.update("counters", "c1", {"$inc": {"n": 1}}, upsert=True) == 1
    assert await store.get("counters", "c1") == {"_id": "c1", "n": 2}
    await store.update("counters", {"kind": "k", "v": {"$gt": 1}}, {"$set": {"v": 5}}, upsert=True)
    page = await store.find("counters", {"kind": "k"})
    assert len(page.items) == 1
    created = page.items[0]
    assert isinstance(created["_id"], str) and created["v"] == 5


async def test_delete(store: DocumentStore) -> None:
    await store.insert_many("people", PEOPLE)
    assert await store.delete("people", "a") == 1
    assert await store.delete("people", "a") == 0
    assert await store.delete("people", {"age": 25}) == 2
    assert await ids(store, {}) == ["c"]


async def test_unique_index_violation_names_index_and_key(store: DocumentStore) -> None:
    await store.ensure_index("users", IndexSpec(fields=[("email", 1)], unique=True, name="email"))
    await store.ensure_index("users", IndexSpec(fields=[("email", 1)], unique=True, name="email"))
    await store.insert("users", {"_id": "u1", "email": "a@x.io"})
    with pytest.raises(DuplicateKeyError) as info:
        await store.insert("users", {"_id": "u2", "email": "a@x.io"})
    err = info.value
    assert (err.collection, err.index, err.key) == ("users", "email", {"email": "a@x.io"})
    assert "a@x.io" in str(err) and "'email'" in str(err)
    with pytest.raises(DuplicateKeyError) as by_id:
        await store.insert("users", {"_id": "u1", "email": "b@x.io"})
    assert by_id.value.index == "_id_" and by_id.value.key == {"_id": "u1"}
    await store.insert("users", {"_id": "u3", "email": "c@x.io"})
    with pytest.raises(DuplicateKeyError):
        await store.update("users", "u3", {"$set": {"email": "a@x.io"}})
    assert await store.count("users") == 2
    assert (await store.get("users", "u3")) == {"_id": "u3", "email": "c@x.io"}


async def test_compound_index_and_query_through_it(store: DocumentStore) -> None:
    spec = IndexSpec(fields=[("user_id", 1), ("timestamp", -1)], name="user_time")
    await store.ensure_index("xp", spec)
    docs = [
        {"_id": f"t{i}", "user_id": f"u{i % 3}", "timestamp": f"2026-01-{i + 1:02d}"}
        for i in range(9)
    ]
    await store.insert_many("xp", docs)
    page = await store.find("xp", {"user_id": "u1"}, sort=[("timestamp", -1)], limit=2)
    assert [d["_id"] for d in page.items] == ["t7", "t4"]


async def test_unit_commits_all_operations(store: DocumentStore) -> None:
    await store.insert("accounts", {"_id": "a", "balance": 10})
    async with store.unit() as u:
        u.update("accounts", "a", {"$inc": {"balance": -5}})
        new_id = u.insert("accounts", {"_id": "b", "balance": 5})
        u.insert_many("ledger", [{"from": "a", "to": "b", "amount": 5}])
        u.delete("accounts", "nobody")
    assert new_id == "b"
    assert u.results[0] == 1 and u.results[1] == ["b"] and u.results[3] == 0
    assert (await store.get("accounts", "a")) == {"_id": "a", "balance": 5}
    assert await store.count("ledger") == 1


async def test_unit_is_all_or_nothing_on_unique_violation(store: DocumentStore) -> None:
    await store.ensure_index("users", IndexSpec(fields=[("email", 1)], unique=True, name="email"))
    await store.insert("users", {"_id": "u1", "email": "a@x.io"})
    with pytest.raises(DuplicateKeyError):
        async with store.unit() as u:
            u.insert("users", {"_id": "u2", "email": "new@x.io"})
            u.insert("users", {"_id": "u3", "email": "a@x.io"})  # violates the unique index
    if store.capabilities.atomic_units:
        assert await store.count("users") == 1
    else:  # documented weaker guarantee: an ordered bulk that stops at the first error
        assert await store.count("users") == 2
        assert await store.get("users", "u3") is None


async def test_unit_body_error_writes_nothing(store: DocumentStore) -> None:
    with pytest.raises(RuntimeError):
        async with store.unit() as u:
            u.insert("things", {"_id": "t"})
            raise RuntimeError("changed my mind")
    assert await store.count("things") == 0
    async with store.unit():
        pass


async def test_concurrent_inserts_all_present(store: DocumentStore) -> None:
    async def put(i: int) -> None:
        await store.insert("many", {"_id": f"d{i:03d}", "i": i})

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for i in range(200):
                nursery.start_soon(put, i)
    assert await store.count("many") == 200
    page = await store.find("many", {"i": {"$gte": 100}}, sort=[("i", -1)], limit=500)
    assert [d["i"] for d in page.items] == list(range(199, 99, -1))


async def test_health_and_statistics(store: DocumentStore) -> None:
    health = await store.health()
    assert health.ok and health.latency_seconds >= 0 and health.error is None
    await store.insert("s", {"_id": "1"})
    await store.get("s", "1")
    await store.get("s", "2")
    with pytest.raises(DuplicateKeyError):
        await store.insert("s", {"_id": "1"})
    with pytest.raises(UnsupportedOperator):
        await store.find("s", {"x": {"$exists": True}})
    stats = store.statistics()
    assert stats.operations["get"].count == 2
    assert stats.operations["insert"].count == 2 and stats.operations["insert"].errors == 1
    assert stats.operations["find"].errors == 1
    assert stats.errors_by_kind["DuplicateKeyError"] == 1
    assert stats.errors_by_kind["UnsupportedOperator"] == 1
    assert sum(stats.operations["get"].buckets) == 2
    assert stats.threads_total >= 2 and stats.threads_busy == 0
