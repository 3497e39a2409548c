"""Leases: single activation across nodes, fencing tokens, loss on expiry and on Redis restarts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import coredis
import pytest
import trio

from tektree.cluster._redis import RedisLink, open_redis_link
from tektree.cluster.leases import Lease, LeaseBusy, Leases
from tektree.testing.redis import RedisServer

TTL = 0.6
RENEW = 0.15
MARGIN = 0.1


@asynccontextmanager
async def two_nodes(url: str) -> AsyncIterator[tuple[RedisLink, RedisLink]]:
    async with open_redis_link(url) as link1, open_redis_link(url) as link2:
        yield link1, link2


def short(link: RedisLink, node: str, **kwargs: object) -> Leases:
    options: dict[str, object] = {
        "ttl_seconds": TTL, "renew_every_seconds": RENEW, "safety_margin_seconds": MARGIN,
    }
    options.update(kwargs)
    return Leases(link, node=node, **options)  # type: ignore[arg-type]


async def acquire_eventually(leases: Leases, actor: str) -> Lease:
    """Retry (bounded) until granted, waiting as long as Redis says the lease stays taken."""
    for _ in range(50):
        result = await leases.try_acquire(actor)
        if isinstance(result, Lease):
            return result
        await trio.sleep(max(result.retry_after_seconds, 0.01))
    raise AssertionError(f"{actor} was never granted to {leases.node}")


async def test_concurrent_acquires_from_two_nodes_grant_each_key_to_exactly_one(
    redis_server: RedisServer,
) -> None:
    async with two_nodes(redis_server.url) as (link1, link2):
        nodes = [Leases(link1, node="n1", restart_grace=False),
                 Leases(link2, node="n2", restart_grace=False)]
        keys = [f"user:{i}" for i in range(10)]
        won: dict[str, list[Lease]] = {key: [] for key in keys}

        async def contend(leases: Leases, key: str) -> None:
            lease = await leases.acquire(key)
            if lease is not None:
                won[key].append(lease)

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for i in range(200):  # 10 keys x 20 acquires, alternating nodes
                    nursery.start_soon(contend, nodes[i % 2], keys[i % 10])
        for key in keys:
            winners = {(lease.node, lease.token) for lease in won[key]}
            assert len(winners) == 1, (key, winners)  # one node, one grant
            assert await nodes[0].holder(key) == winners.pop()
        assert sum(n.statistics().granted for n in nodes) == len(keys)


async def test_tokens_strictly_increase_across_release_and_holders(
    redis_server: RedisServer,
) -> None:
    async with two_nodes(redis_server.url) as (link1, link2):
        a = Leases(link1, node="a", restart_grace=False)
        b = Leases(link2, node="b", restart_grace=False)
        tokens: list[int] = []
        with trio.fail_after(10):
            for _ in range(20):
                for leases in (a, b, a):
                    lease = await leases.acquire("room:1")
                    assert lease is not None and lease.node == leases.node
                    tokens.append(lease.token)
                    assert await leases.release(lease)
                    assert await leases.holder("room:1") is None
        assert tokens == sorted(set(tokens))  # strictly increasing


async def test_a_holder_that_stops_renewing_loses_the_lease_after_ttl(
    redis_server: RedisServer,
) -> None:
    async with two_nodes(redis_server.url) as (link1, link2):
        a = short(link1, "a", restart_grace=False)
        b = short(link2, "b", restart_grace=False)
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                await nursery.start(a.run)
                old = await a.acquire("user:7")
                assert old is not None
                await trio.sleep(3 * RENEW)  # several renewals: still held, still refused to b
                busy = await b.try_acquire("user:7")
                assert isinstance(busy, LeaseBusy)
                assert (busy.node, busy.token) == ("a", old.token)
                assert a.held("user:7") == old
                nursery.cancel_scope.cancel()  # a stops renewing (a pause, a partition)
            new = await acquire_eventually(b, "user:7")
        assert new.token > old.token
        # By the time b could take it, a's own clock had already told it to stop.
        assert a.held("user:7") is None
        assert not a.is_valid(old)
        assert not await a.release(old)  # compare-and-delete: b's lease is untouched
        assert await b.holder("user:7") == ("b", new.token)


async def test_leases_are_reported_lost_when_redis_is_unreachable_for_ttl(
    redis_server: RedisServer,
) -> None:
    lost: list[Lease] = []
    reported = trio.Event()

    def on_lost(lease: Lease) -> None:
        lost.append(lease)
        if len(lost) == 2:
            reported.set()

    async with open_redis_link(redis_server.url) as link:
        a = short(link, "a", restart_grace=False, on_lost=on_lost)
        with trio.fail_after(15):
            async with trio.open_nursery() as nursery:
                await nursery.start(a.run)
                held = [await a.acquire("k1"), await a.acquire("k2")]
                await redis_server.stop()
                stopped_at = trio.current_time()
                await reported.wait()
                elapsed = trio.current_time() - stopped_at
                assert elapsed <= TTL - MARGIN + 0.05  # never later than the local deadline
                assert sorted(lost, key=lambda lease: lease.actor) == held
                assert a.held("k1") is None and a.statistics().lost_expired == 2
                await redis_server.start()
                await link.wait_ready()
                nursery.cancel_scope.cancel()


async def test_redis_restart_reports_leases_lost_and_tokens_keep_increasing(
    redis_server: RedisServer,
) -> None:
    """Regression: a non-persistent restart resets an INCR counter; tokens must not repeat."""
    lost = trio.Event()
    async with two_nodes(redis_server.url) as (link1, link2):
        a = short(link1, "a", on_lost=lambda lease: lost.set())
        b = short(link2, "b")
        with trio.fail_after(20):
            # A fresh Redis grants nothing during its restart grace.
            first = await a.try_acquire("user:1")
            assert isinstance(first, LeaseBusy) and first.node is None
            async with trio.open_nursery() as nursery:
                await nursery.start(a.run)
                old = await acquire_eventually(a, "user:1")
                await redis_server.stop()
                await redis_server.start()
                await lost.wait()  # the next renewal finds the key gone
                assert a.held("user:1") is None
                assert a.statistics().lost_stolen == 1
                assert await link2.call(lambda c: c.get(b.fence_key("user:1"))) is None
                # Old holders may still run until their deadline: the restart grace waits ttl.
                busy = await b.try_acquire("user:1")
                assert isinstance(busy, LeaseBusy) and busy.node is None
                assert 0 < busy.retry_after_seconds <= TTL
                new = await acquire_eventually(b, "user:1")
                nursery.cancel_scope.cancel()
        assert new.token > old.token


async def test_acquire_many_grants_free_actors_and_names_the_holders_of_the_rest(
    redis_server: RedisServer,
) -> None:
    async with two_nodes(redis_server.url) as (link1, link2):
        a = Leases(link1, node="a", restart_grace=False)
        b = Leases(link2, node="b", restart_grace=False)
        with trio.fail_after(10):
            taken = await b.acquire("user:3")
            assert taken is not None
            keys = [f"user:{i}" for i in range(1200)]  # three script calls
            results = await a.acquire_many([*keys, "user:0"])
            again = await a.acquire_many(keys[:10])
        assert list(results) == keys
        busy = results.pop("user:3")
        assert isinstance(busy, LeaseBusy) and (busy.node, busy.token) == ("b", taken.token)
        assert all(isinstance(r, Lease) and r.node == "a" for r in results.values())
        assert isinstance(again.pop("user:3"), LeaseBusy)
        assert again == {key: results[key] for key in keys[:10] if key != "user:3"}  # held: as is
        assert a.statistics().held == 1199 and await a.holder("user:1199") is not None


def test_settings_that_would_let_a_lease_lapse_are_refused() -> None:
    link = RedisLink("redis://127.0.0.1:1", coredis.Redis.from_url("redis://127.0.0.1:1"))
    with pytest.raises(ValueError, match="renew_every_seconds"):
        Leases(link, node="n", ttl_seconds=3, renew_every_seconds=3)
    with pytest.raises(ValueError, match=r"'\|'"):
        Leases(link, node="a|b")
