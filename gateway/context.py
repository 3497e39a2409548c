"""Everything a request may need, built once per gateway start: :class:`Gateway`.

```python
gateway = await open_gateway(node, gateway_options(spec.options))
app = create_app(node, gateway)
```

The signing key is loaded (or generated into ``node.data_dir`` on first start) in a worker
thread; the accounts, knowledge and session indexes are ensured; the rate limiter is the Redis
one when the node is in a cluster (``system.extensions["redis"]``, the cluster service's link),
else in-process.
"""

from __future__ import annotations

import os
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import attrs
import structlog
import trio
from argon2 import PasswordHasher
from prometheus_client import Counter, Histogram

from actors.accounts import Accounts
from actors.areas import Areas
from actors.connections import Connections
from actors.content import Content
from actors.content_questions import QuestionStatus
from actors.content_social import Social
from actors.knowledge import Knowledge
from actors.moderation import Moderation
from actors.quotas import Quotas, counter_for
from actors.rules.tiers import load_tiers
from actors.search import Search
from actors.subscriptions import Billing, CurrentTiers
from gateway.options import GatewayOptions
from gateway.ratelimit import LocalLimiter, RateLimiter, RedisLimiter
from gateway.sessions import Sessions
from gateway.tiers import RatePolicy, TierSource
from gateway.tokens import TokenAuthority, load_or_create_key, load_public_key
from tektree import Node
from tektree.config import ConfigError
from tektree.persistence import DocumentStore
from tektree.webhooks import secret_key

__all__ = ["WEBHOOK_SECRET_ENV", "ContentServices", "Gateway", "HttpMetrics", "open_gateway"]

#: Where the Polar webhook secret comes from when ``billing.webhook_secret`` is empty.
WEBHOOK_SECRET_ENV = "TEKTREE_POLAR_WEBHOOK_SECRET"

_log = structlog.get_logger("tektree.gateway")


@attrs.define
class HttpMetrics:
    """Per-route request counts and latencies in the node's Prometheus registry."""

    requests: Counter
    latency: Histogram
    limited: Counter
    #: One set per registry: a restarted gateway service reuses its node's.
    _by_registry: ClassVar[weakref.WeakKeyDictionary[Any, HttpMetrics]] = (
        weakref.WeakKeyDictionary())

    @classmethod
    def register(cls, registry: Any) -> HttpMetrics:
        known = cls._by_registry.get(registry)
        if known is not None:
            return known
        metrics = cls._by_registry[registry] = cls(
            requests=Counter("tektree_http_requests", "HTTP requests served",
                             ["method", "route", "status"], registry=registry),
            latency=Histogram("tektree_http_request_seconds", "HTTP request latency",
                              ["route"], registry=registry,
                              buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                       0.5, 1.0, 2.5, 5.0)),
            limited=Counter("tektree_http_rate_limited", "Requests refused with 429",
                            ["route_class"], registry=registry),
        )
        return metrics


@attrs.frozen(kw_only=True)
class ContentServices:
    """The content issue's services (areas, insights and the rest, comments and likes, question
    status, search, moderation), stateless over the node's store."""

    areas: Areas
    content: Content
    social: Social
    questions: QuestionStatus
    search: Search
    moderation: Moderation
    connections: Connections

    @classmethod
    def over(cls, store: DocumentStore, producer_id: str) -> ContentServices:
        return cls(areas=Areas(store, producer_id=producer_id),
                   content=Content(store, producer_id=producer_id),
                   social=Social(store, producer_id=producer_id),
                   questions=QuestionStatus(store, producer_id=producer_id),
                   search=Search(store, producer_id=producer_id),
                   moderation=Moderation(store, producer_id=producer_id),
                   connections=Connections(store))

    async def ensure_indexes(self) -> None:
        for part in (self.areas, self.content, self.search, self.moderation, self.connections):
            await part.ensure_indexes()


@attrs.define
class Gateway:
    """The gateway's parts (see the module docstring)."""

    node: Node
    options: GatewayOptions
    store: DocumentStore
    tokens: TokenAuthority
    sessions: Sessions
    accounts: Accounts
    knowledge: Knowledge
    tiers: TierSource
    rates: RatePolicy
    limiter: RateLimiter
    metrics: HttpMetrics
    #: Areas, insights, discussions, resources, comments, likes, search, moderation.
    content: ContentServices
    #: Ids of users known to exist (users are never deleted), least recently used first.
    known_users: OrderedDict[str, None] = attrs.field(factory=OrderedDict)
    #: The OpenAPI document of the app serving this gateway (set by ``create_app``).
    openapi: dict[str, Any] = attrs.field(factory=dict)
    #: Subscriptions and the Polar webhook (``actors.subscriptions``).
    billing: Billing | None = None
    #: The tiers' monthly quotas (None: ``billing.quotas = false``).
    quotas: Quotas | None = None
    #: The Polar webhook's signing secret ("" = the webhook answers 503).
    webhook_secret: str = ""
    #: Unix time for webhook timestamps (tests move it).
    wall_clock: Callable[[], float] = time.time


def _read_public_keys(paths: tuple[str, ...]) -> list[Any]:
    keys = []
    for index, name in enumerate(paths):
        path = Path(name).expanduser()
        try:
            keys.append(load_public_key(path.read_bytes(), source=str(path)))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"gateway.options.jwt_previous_public_key_files[{index}]",
                              str(exc)) from None
    return keys


async def open_gateway(
    node: Node, options: GatewayOptions, *, hasher: PasswordHasher | None = None
) -> Gateway:
    """Build the gateway of ``node`` (its ``store`` service must be running)."""
    store = node.store
    if store is None:
        raise ConfigError("supervisor.children", "the gateway service needs the node's store: "
                          'list the service "store" before it in supervisor.toml')
    key_path = options.key_file(node.config.node.resolved_data_dir())
    try:
        key = await trio.to_thread.run_sync(load_or_create_key, key_path)
    except (OSError, ValueError) as exc:
        raise ConfigError("gateway.options.jwt_private_key_file", str(exc)) from None
    previous = await trio.to_thread.run_sync(_read_public_keys,
                                             options.jwt_previous_public_key_files)
    tokens = TokenAuthority(
        key, previous_keys=previous, issuer=options.jwt_issuer, audience=options.jwt_audience,
        access_ttl_seconds=options.access_token_ttl_seconds,
        refresh_ttl_seconds=options.refresh_token_ttl_seconds)
    try:
        catalog = load_tiers(options.tiers_file)
    except ValueError as exc:
        raise ConfigError("gateway.options.tiers_file", str(exc)) from None
    hasher = hasher or PasswordHasher(time_cost=options.argon2_time_cost,
                                      memory_cost=options.argon2_memory_kib,
                                      parallelism=options.argon2_parallelism)
    accounts = Accounts(store, hasher=hasher, hash_threads=options.hash_threads,
                        producer_id=f"gateway@{node.name}")
    knowledge = Knowledge(store, producer_id=f"gateway@{node.name}")
    sessions = Sessions(store, tokens)
    content = ContentServices.over(store, f"gateway@{node.name}")
    for part in (accounts, knowledge, sessions, content):
        await part.ensure_indexes()
    link = node.system.extensions.get("redis")
    limiter: RateLimiter = LocalLimiter() if link is None else RedisLimiter(link)
    tiers = CurrentTiers(store)
    quotas = None
    if options.billing.quotas:
        quotas = Quotas(store, counter_for(store, link), tiers=tiers, catalog=catalog,
                        producer_id=f"gateway@{node.name}")
        await quotas.ensure_indexes()
        knowledge.quotas = quotas
        content.content.quotas = quotas  # insights and resource uploads
    try:
        billing = Billing(node.system, store, products=options.billing.products)
        secret = options.billing.webhook_secret or os.environ.get(WEBHOOK_SECRET_ENV, "")
        if secret:
            secret_key(secret)
    except ValueError as exc:
        raise ConfigError("gateway.options.billing", str(exc)) from None
    await billing.ensure_indexes()
    _log.info("gateway ready", signing_key=tokens.key.kid, key_file=str(key_path),
              rate_limits="off" if not options.rate_limits else
              ("redis" if link is not None else "in-process"))
    return Gateway(
        node=node, options=options, store=store, tokens=tokens, sessions=sessions,
        accounts=accounts, knowledge=knowledge, tiers=tiers,
        rates=RatePolicy(catalog=catalog,
                         anonymous_requests_per_minute=options.anonymous_rpm()),
        limiter=limiter, metrics=HttpMetrics.register(node.metrics), content=content,
        billing=billing, quotas=quotas, webhook_secret=secret)
