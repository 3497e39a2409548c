"""The package's public API and its settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

import tektree.persistence as persistence
from tektree.persistence import (
    KERNEL_INDEXES,
    SqliteStore,
    StoreCollector,
    StoreSettings,
    open_store,
)


def test_all_is_exactly_the_public_api() -> None:
    public = {n for n in dir(persistence) if not n.startswith("_")} - {
        name
        for name in dir(persistence)
        if isinstance(getattr(persistence, name), type(persistence))
    }
    assert sorted(persistence.__all__) == sorted(public)
    for name in persistence.__all__:
        assert getattr(persistence, name) is not None


def test_settings_validate_values() -> None:
    assert StoreSettings().backend == "sqlite"
    with pytest.raises(ValueError, match="'backend' must be in"):
        StoreSettings(backend="redis")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_threads must be a positive int, got 0"):
        StoreSettings(max_threads=0)
    with pytest.raises(TypeError):
        StoreSettings(mongo_uri="x")  # type: ignore[call-arg]


async def test_open_store_creates_kernel_indexes(tmp_path: Path) -> None:
    async with open_store(StoreSettings(sqlite_path=tmp_path / "k.sqlite3")) as store:
        assert isinstance(store, SqliteStore)
        declared = store.describe_indexes()
        for collection, spec in KERNEL_INDEXES:
            assert spec in declared[collection]


async def test_prometheus_collector_reads_statistics_at_scrape(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "m.sqlite3") as store:
        registry = CollectorRegistry()
        registry.register(StoreCollector(store))
        await store.insert("c", {"_id": "1"})
        await store.get("c", "1")
        text = generate_latest(registry).decode()
    assert 'tektree_store_operation_seconds_count{backend="sqlite",operation="get"} 1.0' in text
    assert 'tektree_store_threads_total{backend="sqlite"} 8.0' in text
    assert "tektree_store_write_batches_total" in text
