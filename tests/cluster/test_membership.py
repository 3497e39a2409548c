"""Membership against a real redis-server: joins, leaves, deaths, a Redis restart, status info."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import trio

from tektree.cluster import open_redis_link
from tektree.cluster.membership import Membership, MembershipView, read_members
from tektree.cluster.placement import Member
from tektree.testing.redis import RedisServer

FAST = {"heartbeat_seconds": 0.2, "ttl_seconds": 0.6}


class Node:
    """One node: its own RedisLink and Membership, run in its own cancel scope."""

    def __init__(self, membership: Membership, scope: trio.CancelScope) -> None:
        self.membership = membership
        self.scope = scope

    def kill(self) -> None:
        """Die without leaving: the heartbeats stop, the entry stays until it expires."""
        self.scope.cancel()


async def start_node(
    nursery: trio.Nursery, server: RedisServer, name: str, **options: object
) -> Node:
    """A node in a task of its own, owning its link (so the nodes share nothing in-process)."""
    scope = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[Membership]) -> None:
        with scope:
            async with open_redis_link(server.url) as link:
                membership = Membership(link, name=name, **{**FAST, **options})  # type: ignore[arg-type]
                await membership.run(task_status=_Relay(task_status, membership))

    membership: Membership = await nursery.start(run)
    return Node(membership, scope)


class _Relay:
    """Passes ``Membership.run``'s start on with the membership itself."""

    def __init__(self, status: trio.TaskStatus[Membership], membership: Membership) -> None:
        self.status, self.membership = status, membership

    def started(self, value: object = None) -> None:
        self.status.started(self.membership)


async def until(membership: Membership, predicate: Callable[[MembershipView], bool]
                ) -> MembershipView:
    """The first view of ``membership`` satisfying ``predicate`` (bound it with a deadline)."""
    view = membership.view
    while not predicate(view):
        view = await membership.wait_for_change(view.version)
    return view


def names(*members: str) -> Callable[[MembershipView], bool]:
    return lambda view: set(view.names) == set(members)


@asynccontextmanager
async def nodes(server: RedisServer, *names_: str, **options: object
                ) -> AsyncIterator[tuple[list[Node], trio.Nursery]]:
    async with trio.open_nursery() as nursery:
        started = [await start_node(nursery, server, n, **options) for n in names_]
        yield started, nursery
        nursery.cancel_scope.cancel()


async def test_three_nodes_see_each_other(redis_server: RedisServer) -> None:
    async with nodes(redis_server, "n1", "n2", "n3") as (started, _):
        with trio.fail_after(2):
            for node in started:
                view = await until(node.membership, names("n1", "n2", "n3"))
                assert view.by_name[node.membership.name] == node.membership.self_member
                assert node.membership.ready
        first = started[0].membership.view
        assert [m.name for m in first.members] == ["n1", "n2", "n3"]  # sorted by name
        # every node agrees on the incarnations too
        assert {n.membership.view.members for n in started} == {first.members}


async def test_start_returns_a_view_containing_this_node(redis_server: RedisServer) -> None:
    async with open_redis_link(redis_server.url) as link, trio.open_nursery() as nursery:
        membership = Membership(
            link, name="solo", roles={"web"}, weight=2.0, heartbeat_seconds=0.2, ttl_seconds=0.6
        )
        view = await nursery.start(membership.run)
        assert view.names == ("solo",)
        assert view.by_name["solo"] == Member(
            name="solo", roles=frozenset({"web"}), weight=2.0,
            incarnation=membership.self_member.incarnation,
        )
        assert membership.ready
        await membership.leave()
        assert not membership.ready
    # leave() stopped run(): the nursery closed on its own


async def test_join_is_noticed_before_the_next_heartbeat(redis_server: RedisServer) -> None:
    slow = {"heartbeat_seconds": 30.0, "ttl_seconds": 90.0}  # only pub/sub can be this quick
    async with nodes(redis_server, "n1", **slow) as (started, nursery):
        n1 = started[0].membership
        before = n1.view.version
        await start_node(nursery, redis_server, "n2", **slow)
        with trio.fail_after(2):
            view = await n1.wait_for_change(before)
        assert view.names == ("n1", "n2")


async def test_graceful_leave_is_seen_at_once(redis_server: RedisServer) -> None:
    slow = {"heartbeat_seconds": 30.0, "ttl_seconds": 90.0}  # no heartbeat can explain it
    async with nodes(redis_server, "n1", "n2", "n3", **slow) as (started, _):
        with trio.fail_after(2):
            for node in started:
                await until(node.membership, names("n1", "n2", "n3"))
        n1, n2, n3 = (node.membership for node in started)
        before1, before3 = n1.view.version, n3.view.version
        start = trio.current_time()
        with trio.fail_after(2):
            await n2.leave()
            assert (await n1.wait_for_change(before1)).names == ("n1", "n3")
            assert (await n3.wait_for_change(before3)).names == ("n1", "n3")
        print(f"leave noticed after {(trio.current_time() - start) * 1000:.1f} ms")
        assert [m.name for m in await read_members(n1.link)] == ["n1", "n3"]


async def test_a_dead_node_disappears_within_ttl_plus_heartbeat(
    redis_server: RedisServer,
) -> None:
    async with nodes(redis_server, "n1", "n2", "n3") as (started, _):
        with trio.fail_after(2):
            for node in started:
                await until(node.membership, names("n1", "n2", "n3"))
        n1, n3 = started[0].membership, started[2].membership
        started[1].kill()
        died = trio.current_time()
        bound = FAST["ttl_seconds"] + FAST["heartbeat_seconds"]
        with trio.fail_after(bound + 0.4):  # + scheduling slack
            await until(n1, names("n1", "n3"))
            await until(n3, names("n1", "n3"))
        elapsed = trio.current_time() - died
        print(f"death noticed after {elapsed * 1000:.0f} ms (bound {bound * 1000:.0f} ms)")
        assert n1.ready and n3.ready


async def test_nodes_survive_a_redis_restart(redis_server: RedisServer) -> None:
    async with nodes(redis_server, "n1", "n2", "n3") as (started, _):
        memberships = [node.membership for node in started]
        with trio.fail_after(2):
            for m in memberships:
                await until(m, names("n1", "n2", "n3"))
        versions = [m.view.version for m in memberships]
        await redis_server.stop()
        with trio.fail_after(3):
            for m in memberships:
                await m.wait_readiness(False)
        for m in memberships:  # the last view is kept
            assert m.view.names == ("n1", "n2", "n3")
        await redis_server.start()  # same port, empty: every registration is gone
        with trio.fail_after(5):
            for m in memberships:
                await m.wait_readiness(True)
            # ready again = a heartbeat succeeded = registered again in the empty server
            assert [i.name for i in await read_members(memberships[0].link)] == [
                "n1", "n2", "n3"
            ]
            for m in memberships:
                await until(m, names("n1", "n2", "n3"))
        # members were kept through the outage (grace of one ttl): nobody looked dead
        assert [m.view.version for m in memberships] == versions


async def test_a_dead_node_is_dropped_after_a_redis_restart(redis_server: RedisServer) -> None:
    async with nodes(redis_server, "n1", "n2") as (started, _):
        n1 = started[0].membership
        with trio.fail_after(2):
            await until(n1, names("n1", "n2"))
        await redis_server.stop()
        started[1].kill()  # dies during the outage: it never re-registers
        with trio.fail_after(3):
            await n1.wait_readiness(False)
        await redis_server.start()
        with trio.fail_after(5):
            await until(n1, names("n1"))
        assert n1.ready


async def test_set_info_is_visible_to_read_members(redis_server: RedisServer) -> None:
    async with nodes(redis_server, "n1", roles={"game"}) as (started, nursery):
        n1 = started[0].membership
        n1.set_info({"actors": 12, "mailbox_depth": {"Room": 3}})
        with trio.fail_after(2):
            # n2's join makes n1 beat at once: once n1 sees n2, its info went out
            n2 = (await start_node(nursery, redis_server, "n2")).membership
            await until(n1, names("n1", "n2"))
            infos = await read_members(n2.link)
        assert [i.name for i in infos] == ["n1", "n2"]
        assert infos[0].info == {"actors": 12, "mailbox_depth": {"Room": 3}}
        assert infos[1].info == {}
        assert infos[0].roles == frozenset({"game"})
        assert infos[1].roles == frozenset()
        assert infos[0].member.incarnation == n1.self_member.incarnation
        assert 0 < infos[0].expires_in_ms <= 600


async def test_bad_settings_are_rejected_with_the_rule(redis_server: RedisServer) -> None:
    async with open_redis_link(redis_server.url) as link:
        with pytest.raises(ValueError, match="ttl_seconds must be greater than heartbeat"):
            Membership(link, name="n1", heartbeat_seconds=1.0, ttl_seconds=1.0)
        with pytest.raises(ValueError, match="JSON-serialisable"):
            Membership(link, name="n1").set_info({"when": object()})


async def test_changes_yields_each_new_view(redis_server: RedisServer) -> None:
    async with nodes(redis_server, "n1") as (started, nursery):
        n1 = started[0].membership
        seen: list[tuple[str, ...]] = []
        with trio.fail_after(3):
            async with trio.open_nursery() as inner:
                async def follow() -> None:
                    async for view in n1.changes():
                        seen.append(view.names)
                        if view.names == ("n1",):
                            return

                inner.start_soon(follow)
                await trio.testing.wait_all_tasks_blocked()
                n2 = await start_node(nursery, redis_server, "n2")
                await until(n1, names("n1", "n2"))
                await n2.membership.leave()
        assert seen == [("n1", "n2"), ("n1",)]
