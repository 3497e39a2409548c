"""The ``store`` node service: the node's document store, opened and closed under supervision.

```toml
[[supervisor.children]]
type = "service"
name = "store"
service = "store"
```

It maps ``[store]`` (and ``node.data_dir`` for the SQLite file) to :class:`StoreSettings`, opens
the store with the kernel's indexes, and while it runs the node has it: ``node.store``,
``node.system.extensions["store"]`` (what actors read, see ``EventSourcedActor.store``), a
``store`` readiness check (one round trip, ``store.health()``) and the store's metrics in
``node.metrics``. All of that is withdrawn, then the store closed, when the service stops. A
store that cannot be opened (MongoDB unreachable within ``timeout_ms``) fails the service with
``StoreUnavailable``; its supervisor retries within its intensity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import structlog
import trio

from tektree.persistence._metrics import StoreCollector
from tektree.persistence._open import StoreSettings, open_store
from tektree.persistence._protocol import DocumentStore

if TYPE_CHECKING:
    from tektree._node import Node
    from tektree.config import Config, ServiceSpec

#: The key of the node's store in ``ActorSystem.extensions`` and ``Node.readiness``.
STORE_EXTENSION: Final = "store"

_log = structlog.get_logger("tektree.persistence")


def store_settings(config: Config) -> StoreSettings:
    """The ``StoreSettings`` of a node's configuration (``[store]`` and ``node.data_dir``)."""
    store = config.store
    return StoreSettings(
        backend=store.backend,
        sqlite_path=store.sqlite_path(config.node.resolved_data_dir()),
        mongo_url=store.mongo_url,
        mongo_database=store.mongo_database,
        timeout_ms=store.timeout_ms,
        max_threads=store.max_threads,
    )


async def store_service(
    node: Node,
    spec: ServiceSpec,
    *,
    task_status: trio.TaskStatus[Any],
    mongo_client: Any = None,
) -> None:
    """Serve the node's store until cancelled (the builtin service ``"store"``).

    ``mongo_client`` injects a client (``mongomock.MongoClient()`` in tests:
    ``services={"store": functools.partial(store_service, mongo_client=...)}``).
    """
    settings = store_settings(node.config)
    async with open_store(settings, mongo_client=mongo_client) as store:
        collector = StoreCollector(store)
        node.metrics.register(collector)
        node.store = store
        node.system.extensions[STORE_EXTENSION] = store

        async def ready() -> bool:
            return (await store.health()).ok

        node.readiness[STORE_EXTENSION] = ready
        try:
            target = settings.sqlite_path if settings.backend == "sqlite" else store_target(store)
            _log.info("store open", node=node.name, backend=settings.backend, target=str(target))
            task_status.started(store)
            await trio.sleep_forever()
        finally:
            if node.readiness.get(STORE_EXTENSION) is ready:
                del node.readiness[STORE_EXTENSION]
            if node.system.extensions.get(STORE_EXTENSION) is store:
                del node.system.extensions[STORE_EXTENSION]
            if node.store is store:
                node.store = None
            node.metrics.unregister(collector)


def store_target(store: DocumentStore) -> str:
    """Where a store lives, for log lines: its URL, credentials masked (``MongoStore.url``)."""
    return str(getattr(store, "url", "?"))
