"""The node's link to Redis: one coredis client, readiness, and retry with backoff.

Redis can restart or vanish for a while; nothing here gives up on its own. :meth:`call` retries
a command with exponential backoff (50 ms doubling to 2 s) while Redis is unreachable, marks the
link not-ready meanwhile (``/readyz`` reports it), logs each transition once, and returns as
soon as a retry succeeds. Callers bound it with their own deadline when they must.
"""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import coredis
import structlog
import trio
from coredis.exceptions import BusyLoadingError, ConnectionError

from tektree._pool import backoff_delay

__all__ = ["TRANSIENT_ERRORS", "RedisLink", "open_redis_link"]

T = TypeVar("T")

_log = structlog.get_logger("tektree.cluster.redis")

#: Errors that mean "Redis is unreachable or restarting": retried, never surfaced as bugs.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError, TimeoutError, BusyLoadingError, OSError, trio.BrokenResourceError,
    trio.ClosedResourceError,
)


class RedisLink:
    """A coredis client plus readiness. Use :func:`open_redis_link` to get one."""

    def __init__(self, url: str, client: coredis.Redis[bytes], *, prefix: str = "tektree") -> None:
        self.url = url
        self.client = client
        self.prefix = prefix
        self.ready = True
        self.failures = 0
        self._ready_event = trio.Event()
        self._ready_event.set()

    def key(self, *parts: str) -> str:
        """A namespaced key: ``key("inbox", "n1")`` → ``tektree:inbox:n1``."""
        return ":".join((self.prefix, *parts))

    def _mark(self, ready: bool, error: BaseException | None = None) -> None:
        if ready == self.ready:
            return
        self.ready = ready
        if ready:
            _log.info("redis reachable again", url=_masked(self.url))
            self._ready_event.set()
        else:
            self.failures += 1
            _log.warning("redis unreachable; retrying with backoff", url=_masked(self.url),
                         error=repr(error))
            self._ready_event = trio.Event()

    def succeeded(self) -> None:
        """A call made outside :meth:`call` succeeded: Redis is reachable."""
        if not self.ready:
            self._mark(True)

    async def wait_ready(self) -> None:
        await self._ready_event.wait()

    async def call(
        self,
        fn: Callable[[coredis.Redis[bytes]], Awaitable[T]],
        *,
        retry: bool = True,
        failed: BaseException | None = None,
    ) -> T:
        """Run ``fn(client)``; on a transient error retry with backoff until it succeeds.

        ``failed``: the caller made the first attempt itself (a hot path that spares this
        wrapper) and it raised ``failed``; it is handled as if ``fn`` had raised it."""
        attempt = 0
        while True:
            try:
                if failed is not None:
                    error, failed = failed, None
                    raise error
                result = await fn(self.client)
            except TRANSIENT_ERRORS as exc:
                if isinstance(exc, OSError) and exc.errno not in (
                    None, errno.ECONNREFUSED, errno.ECONNRESET, errno.EPIPE, errno.ETIMEDOUT,
                    errno.EHOSTUNREACH, errno.ENETUNREACH,
                ):
                    raise
                self._mark(False, exc)
                if not retry:
                    raise
                attempt += 1
                await trio.sleep(backoff_delay(attempt, 0.05, 2.0))
                continue
            self._mark(True)
            return result

    async def ping(self) -> bool:
        """One PING without retrying: the readiness check."""
        try:
            await self.call(lambda c: c.ping(), retry=False)
        except TRANSIENT_ERRORS:
            return False
        return True


def _masked(url: str) -> str:
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


@asynccontextmanager
async def open_redis_link(
    url: str, *, prefix: str = "tektree", max_connections: int = 64, **options: Any
) -> AsyncIterator[RedisLink]:
    """A link to the Redis at ``url`` (``redis://``, ``rediss://`` or ``unix://``)."""
    client: coredis.Redis[bytes] = coredis.Redis.from_url(
        url, decode_responses=False, max_connections=max_connections,
        connect_timeout=options.pop("connect_timeout", 2.0), **options,
    )
    async with client:
        yield RedisLink(url, client, prefix=prefix)
