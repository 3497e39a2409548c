"""MongoStore specifics that need no server: start-up errors and URL masking."""

from __future__ import annotations

import mongomock
import pytest

from tektree.persistence import MongoStore, StoreUnavailable, mask_url


def test_mask_url_hides_passwords() -> None:
    assert mask_url("mongodb://app:s3cret@db1:27017,db2/x?replicaSet=rs") == (
        "mongodb://app:***@db1:27017,db2/x?replicaSet=rs"
    )
    assert mask_url("mongodb://db:27017") == "mongodb://db:27017"


async def test_unreachable_server_fails_at_start_naming_masked_url() -> None:
    url = "mongodb://app:s3cret@127.0.0.1:9/tektree"
    with pytest.raises(StoreUnavailable) as info:
        async with MongoStore.open(url, timeout_ms=200):
            pass
    assert "app:***@127.0.0.1:9" in str(info.value)
    assert "s3cret" not in str(info.value)


async def test_mongomock_takes_the_non_transactional_path() -> None:
    async with MongoStore.open(client=mongomock.MongoClient()) as store:
        assert store.capabilities.atomic_units is False
        assert (await store.health()).ok
