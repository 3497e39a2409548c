"""The ``store`` fixture: every contract test runs against each backend.

- ``sqlite``: a file under ``tmp_path`` (always).
- ``mongomock``: ``MongoStore`` with an injected ``mongomock.MongoClient()`` -- it exercises the
  adapter; mongomock has no transactions, so ``unit()`` takes the non-transactional path.
- ``mongodb``: a real server at ``TEKTREE_TEST_MONGO_URL`` (skipped when unset; when ``CI`` is set
  an unreachable server fails the run instead of skipping).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import mongomock
import pymongo
import pytest

from tektree.persistence import DocumentStore, StoreSettings, StoreUnavailable, open_store

BACKENDS = ["sqlite", "mongomock", "mongodb"]


@pytest.fixture(params=BACKENDS)
async def store(
    request: pytest.FixtureRequest, tmp_path: os.PathLike[str]
) -> AsyncIterator[DocumentStore]:
    backend = request.param
    if backend == "sqlite":
        settings = StoreSettings(sqlite_path=f"{tmp_path}/store.sqlite3")
        async with open_store(settings) as s:
            yield s
    elif backend == "mongomock":
        async with open_store(
            StoreSettings(backend="mongodb"), mongo_client=mongomock.MongoClient()
        ) as s:
            yield s
    else:
        url = os.environ.get("TEKTREE_TEST_MONGO_URL")
        if not url:
            pytest.skip("real MongoDB not configured: set TEKTREE_TEST_MONGO_URL to run")
        database = f"tektree_test_{uuid.uuid4().hex[:12]}"
        settings = StoreSettings(
            backend="mongodb", mongo_url=url, mongo_database=database, timeout_ms=5000
        )
        try:
            async with open_store(settings) as s:
                yield s
        except StoreUnavailable as exc:
            if os.environ.get("CI"):
                pytest.fail(f"CI: TEKTREE_TEST_MONGO_URL is set but unreachable: {exc}")
            pytest.skip(f"MongoDB unreachable: {exc}")
        finally:
            client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
                url, serverSelectionTimeoutMS=2000
            )
            try:
                client.drop_database(database)
            except pymongo.errors.PyMongoError:
                pass
            finally:
                client.close()
