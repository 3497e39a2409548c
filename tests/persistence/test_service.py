"""The ``store`` node service: opened under supervision, lent to the node, withdrawn and closed."""

from __future__ import annotations

import functools
from pathlib import Path

import attrs
import mongomock
import pytest
import trio
from prometheus_client import generate_latest

from tektree import NodeFailed
from tektree.config import StoreConfig
from tektree.persistence import (
    JOURNAL,
    KERNEL_INDEXES,
    STORE_EXTENSION,
    MongoStore,
    SqliteStore,
    StoreClosed,
    StoreUnavailable,
    store_service,
    store_settings,
)
from tektree.testing import open_test_node, test_config

STORE = {"type": "service", "name": "store", "service": "store"}


async def test_node_opens_its_store_in_the_data_dir_and_closes_it_on_stop(
    tmp_path: Path,
) -> None:
    config = test_config(services=[STORE], node={"data_dir": str(tmp_path)})
    async with open_test_node(config) as node:
        store = node.store
        assert isinstance(store, SqliteStore)
        assert Path(store.path) == tmp_path / "tektree.sqlite3"
        assert node.system.extensions[STORE_EXTENSION] is store
        await store.insert("notes", {"_id": "n1", "text": "hi"})
        assert await store.get("notes", "n1") == {"_id": "n1", "text": "hi"}
        declared = store.describe_indexes()
        assert all(spec in declared[coll] for coll, spec in KERNEL_INDEXES)
        assert await node.is_ready() == {"accepting": True, "store": True}
        text = generate_latest(node.metrics).decode()
        assert 'tektree_store_operation_seconds_count{backend="sqlite",operation="get"} 1.0' in text
        assert "tektree_store_write_batches_total" in text
        assert "tektree_actor" in text or "tektree_" in text  # the runtime collector is still there
    assert node.store is None
    assert STORE_EXTENSION not in node.system.extensions
    assert "store" not in node.readiness
    assert "tektree_store_" not in generate_latest(node.metrics).decode()
    with pytest.raises(StoreClosed):
        await store.get("notes", "n1")
    assert (tmp_path / "tektree.sqlite3").exists()


async def test_settings_map_the_node_config(tmp_path: Path) -> None:
    config = test_config(node={"data_dir": str(tmp_path)})
    config = attrs.evolve(config, store=StoreConfig(
        backend="mongodb", mongo_url="mongodb://u:pw@db:27017", mongo_database="tt",
        timeout_ms=1234, max_threads=3, sqlite_file="x.db",
    ))
    settings = store_settings(config)
    assert settings.backend == "mongodb"
    assert (settings.mongo_url, settings.mongo_database) == ("mongodb://u:pw@db:27017", "tt")
    assert (settings.timeout_ms, settings.max_threads) == (1234, 3)
    assert settings.sqlite_path == tmp_path / "x.db"
    absolute = attrs.evolve(config, store=StoreConfig(sqlite_file=str(tmp_path / "abs.db")))
    assert store_settings(absolute).sqlite_path == tmp_path / "abs.db"


async def test_store_service_over_mongomock(tmp_path: Path) -> None:
    config = attrs.evolve(
        test_config(services=[STORE], node={"data_dir": str(tmp_path)}),
        store=StoreConfig(backend="mongodb", mongo_url="mongodb://mock"),
    )
    service = functools.partial(store_service, mongo_client=mongomock.MongoClient())
    async with open_test_node(config, services={"store": service}) as node:
        assert isinstance(node.store, MongoStore)
        await node.store.insert(JOURNAL, {"_id": "x", "actor_id": "a", "seq": 1, "event_id": "e"})
        assert await node.store.count(JOURNAL) == 1
        assert (await node.is_ready())["store"] is True
    assert node.store is None


async def test_unreachable_mongodb_fails_the_service_with_store_unavailable(
    tmp_path: Path,
) -> None:
    config = attrs.evolve(
        test_config(
            services=[STORE],
            node={"data_dir": str(tmp_path)},
            supervisor={"max_restarts": 1, "backoff_initial_seconds": 0.01},
        ),
        store=StoreConfig(backend="mongodb", mongo_url="mongodb://127.0.0.1:9", timeout_ms=200),
    )
    failures: list[NodeFailed] = []
    with trio.fail_after(20):
        try:
            async with open_test_node(config):
                pass  # pragma: no cover - the node cannot start
        except* NodeFailed as group:
            failures.extend(e for e in group.exceptions if isinstance(e, NodeFailed))
    assert len(failures) == 1
    cause = failures[0].cause
    assert "StoreUnavailable" in str(cause)
    last = getattr(cause, "cause", None)
    assert isinstance(last, StoreUnavailable)
    assert "127.0.0.1:9" in str(last)
