"""The content services on one real store, and users with roles, for the content tests."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import mongomock

from actors.accounts import USERS, Accounts, Viewer, hasher_for_tests
from actors.areas import Areas
from actors.connections import Connections
from actors.content import Content
from actors.content_questions import QuestionStatus
from actors.content_social import Social
from actors.knowledge import Knowledge
from actors.moderation import Moderation
from actors.profile import GetXpTransactions
from actors.search import Search
from tektree import Node
from tektree.persistence import (
    EVENTS,
    DocumentStore,
    StoreSettings,
    ensure_kernel_indexes,
    open_store,
)

BODY = "A body long enough to pass the twenty character rule."
_handles = itertools.count()


@attrs.define
class World:
    store: DocumentStore
    accounts: Accounts
    knowledge: Knowledge
    questions: QuestionStatus
    areas: Areas
    content: Content
    social: Social
    search: Search
    moderation: Moderation
    connections: Connections

    async def user(self, name: str = "user", *, role: str = "user") -> str:
        n = next(_handles)
        user = await self.accounts.register(email=f"{name}{n}@example.com",
                                            password="correct horse battery", handle=f"{name}{n}")
        if role != "user":
            await self.accounts.set_role(user.uid, role)
        return user.uid

    async def viewer(self, uid: str) -> Viewer:
        doc = await self.store.get(USERS, uid)
        assert doc is not None
        return Viewer(user_id=uid, role=doc["role"])

    async def events(self, event_type: str) -> list[dict[str, Any]]:
        page = await self.store.find(EVENTS, {"event_type": event_type},
                                     sort=[("timestamp", 1)], limit=1000)
        return list(page.items)


async def earned(node: Node, user_id: str) -> list[tuple[str, int]]:
    """The (reason, amount) of a user's XP transactions for actions, oldest first (the welcome
    bonus and the bonuses of quests and achievements left out: they depend on the day)."""
    reply = await node.system.ref("user", user_id).ask(GetXpTransactions(limit=100),
                                                       timeout=10)
    skip = {"quest_completed", "achievement_unlocked", "welcome"}
    return [(t["source"], t["amount"]) for t in reversed(reply["items"])
            if t["source"] not in skip]


async def build_world(store: DocumentStore) -> World:
    await ensure_kernel_indexes(store)
    world = World(
        store=store, accounts=Accounts(store, hasher=hasher_for_tests()),
        knowledge=Knowledge(store), questions=QuestionStatus(store), areas=Areas(store),
        content=Content(store), social=Social(store), search=Search(store),
        moderation=Moderation(store), connections=Connections(store),
    )
    for service in (world.accounts, world.knowledge, world.areas, world.content, world.social,
                    world.search, world.moderation, world.connections):
        await service.ensure_indexes()
    return world


@asynccontextmanager
async def open_world(tmp_path: Path, backend: str = "sqlite") -> AsyncIterator[World]:
    """The services on SQLite (a file under ``tmp_path``) or on mongomock."""
    if backend == "sqlite":
        settings = StoreSettings(sqlite_path=tmp_path / "content.sqlite3")
        async with open_store(settings) as store:
            yield await build_world(store)
    else:
        async with open_store(StoreSettings(backend="mongodb"),
                              mongo_client=mongomock.MongoClient()) as store:
            yield await build_world(store)
