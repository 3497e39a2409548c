"""``open_store``: the one way the node opens its store, from ``StoreSettings``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import attrs

from tektree.persistence._journal import JOURNAL_INDEXES
from tektree.persistence._outbox import OUTBOX_INDEXES
from tektree.persistence._protocol import DocumentStore

KERNEL_INDEXES = (*JOURNAL_INDEXES, *OUTBOX_INDEXES)


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"StoreSettings.{attribute.name} must be a positive int, got {value!r}")


@attrs.frozen(kw_only=True)
class StoreSettings:
    """What the node tells the persistence layer (it maps its own config to this).

    ``backend``: ``"sqlite"`` (embedded default: one file at ``sqlite_path``) or ``"mongodb"``
    (``mongo_url``, ``mongo_database``). ``timeout_ms`` bounds each MongoDB call and server
    selection; ``max_threads`` bounds the worker threads (and MongoDB's connection pool).
    """

    backend: Literal["sqlite", "mongodb"] = attrs.field(
        default="sqlite", validator=attrs.validators.in_(("sqlite", "mongodb"))
    )
    sqlite_path: Path = attrs.field(default=Path("data/tektree.sqlite3"), converter=Path)
    mongo_url: str = "mongodb://localhost:27017"
    mongo_database: str = "tektree"
    timeout_ms: int = attrs.field(default=10_000, validator=_positive)
    max_threads: int = attrs.field(default=8, validator=_positive)


async def ensure_kernel_indexes(store: DocumentStore) -> None:
    """Create the runtime's own indexes (journal, outbox); domain code declares its own."""
    for collection, spec in KERNEL_INDEXES:
        await store.ensure_index(collection, spec)


@asynccontextmanager
async def open_store(
    settings: StoreSettings, *, mongo_client: Any = None
) -> AsyncIterator[DocumentStore]:
    """Open the configured store with the kernel's indexes in place; close it on exit.

    ``mongo_client`` injects a client (e.g. ``mongomock.MongoClient()``) for tests.
    """
    if settings.backend == "sqlite":
        from tektree.persistence._sqlite import SqliteStore

        async with SqliteStore.open(settings.sqlite_path, max_threads=settings.max_threads) as s:
            await ensure_kernel_indexes(s)
            yield s
    else:
        from tektree.persistence._mongo import MongoStore

        async with MongoStore.open(
            settings.mongo_url,
            settings.mongo_database,
            client=mongo_client,
            timeout_ms=settings.timeout_ms,
            max_threads=settings.max_threads,
        ) as m:
            await ensure_kernel_indexes(m)
            yield m
