"""The node's configuration as data: frozen value classes and the rules each setting obeys.

Every setting is an attrs field whose metadata holds a :class:`Rules` (its one-line meaning plus
its constraints). The loader in :mod:`tektree.config` walks these fields and their types; nothing
here knows about TOML, environment variables or error paths.
"""

from __future__ import annotations

import os
import re
import socket
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeAlias

import attrs
import platformdirs

LogLevel: TypeAlias = Literal["debug", "info", "warning", "error"]
LogFormat: TypeAlias = Literal["json", "console"]
StoreBackend: TypeAlias = Literal["sqlite", "mongodb"]
Strategy: TypeAlias = Literal["one_for_one", "one_for_all", "rest_for_one"]
RestartType: TypeAlias = Literal["permanent", "transient", "temporary"]
Overflow: TypeAlias = Literal["backpressure", "reject", "drop_oldest"]
SmtpSecurity: TypeAlias = Literal["starttls", "ssl", "none"]

RULES_KEY = "tektree.config"

_EMPTY: Mapping[str, Any] = types.MappingProxyType({})


@attrs.frozen(kw_only=True)
class Pattern:
    """A regular expression a string setting must match in full, and how to say it to a human."""

    regex: re.Pattern[str]
    hint: str


@attrs.frozen(kw_only=True)
class Rules:
    """What one setting means and the constraints the loader enforces on it.

    ``gt``/``ge``/``le`` bound numbers; ``ge_field`` names a sibling setting this one must not be
    below; ``required_when`` = (sibling, value) makes an empty string an error when the sibling
    has that value.
    """

    doc: str
    gt: float | None = None
    ge: float | None = None
    le: float | None = None
    ge_field: str | None = None
    pattern: Pattern | None = None
    required_when: tuple[str, str] | None = None


def rules(doc: str, **constraints: Any) -> dict[str, Rules]:
    """Field metadata for a setting: ``attrs.field(default=..., metadata=rules("...", gt=0))``."""
    return {RULES_KEY: Rules(doc=doc, **constraints)}


_SLUG = Pattern(
    regex=re.compile(r"[a-z][a-z0-9_-]*"),
    hint="a lowercase letter followed by lowercase letters, digits, '_' or '-'",
)
_IMPORT_PATH = Pattern(
    regex=re.compile(r"[\w.]+:[\w.]+"), hint="an import path 'package.module:attribute'"
)
_SERVICE = Pattern(
    regex=re.compile(r"[a-z_]\w*|[\w.]+:[\w.]+"),
    hint="a builtin service name like 'timers' or an import path 'package.module:attribute'",
)
_REDIS_URL = Pattern(
    regex=re.compile(r"((redis|rediss|unix)://.*)?", re.DOTALL),
    hint="empty (embedded mode) or a URL starting with redis://, rediss:// or unix://",
)


@attrs.frozen(kw_only=True)
class NodeConfig:
    """``[node]``: this process's identity and global timeouts."""

    name: str = attrs.field(
        default="", metadata=rules("node name in the cluster; empty = hostname-pid")
    )
    data_dir: str = attrs.field(
        default="", metadata=rules("directory for local data; empty = the user data directory")
    )
    drain_timeout_seconds: float = attrs.field(
        default=10.0, metadata=rules("seconds to drain mailboxes on shutdown", gt=0)
    )
    ask_timeout_seconds: float = attrs.field(
        default=5.0, metadata=rules("default seconds an ask waits for its reply", gt=0)
    )
    check_serialization: bool = attrs.field(
        default=False, metadata=rules("round-trip every local message through the codec")
    )
    gc_young_threshold: int = attrs.field(
        default=0, metadata=rules("once started, freeze the node's objects out of the cyclic "
                                  "collector and collect young objects every this many "
                                  "allocations (CPython: 700); 0 = leave it as it is (see "
                                  "tektree._gc; the shipped supervisor.toml sets 10000)", ge=0)
    )
    switch_interval_ms: float = attrs.field(
        default=0.0, metadata=rules("while the node runs, the interpreter's thread switch "
                                    "interval in milliseconds (CPython: 5); 0 = leave it as it "
                                    "is (see tektree._gil; the shipped supervisor.toml sets 1)",
                                    ge=0, le=100)
    )

    def resolved_name(self) -> str:
        """The configured name, or ``<hostname>-<pid>`` when it is empty."""
        return self.name or f"{socket.gethostname()}-{os.getpid()}"

    def resolved_data_dir(self) -> Path:
        """The configured data directory (``~`` expanded), or the platform's user data dir."""
        if self.data_dir:
            return Path(self.data_dir).expanduser()
        return Path(platformdirs.user_data_dir("tektree"))


@attrs.frozen(kw_only=True)
class HttpConfig:
    """``[http]``: the gateway's listening socket."""

    enabled: bool = attrs.field(default=True, metadata=rules("serve the HTTP/WebSocket gateway"))
    host: str = attrs.field(default="127.0.0.1", metadata=rules("address the gateway binds"))
    port: int = attrs.field(
        default=8080,
        metadata=rules("TCP port the gateway binds; 0 = any free port", ge=0, le=65535),
    )


@attrs.frozen(kw_only=True)
class LoggingConfig:
    """``[logging]``: structlog output."""

    level: LogLevel = attrs.field(default="info", metadata=rules("lowest level logged"))
    format: LogFormat = attrs.field(
        default="json", metadata=rules("json lines, or coloured console output")
    )


@attrs.frozen(kw_only=True)
class RedisConfig:
    """``[redis]``: cluster mode. An empty URL runs one embedded node."""

    url: str = attrs.field(
        default="",
        metadata=rules("Redis URL; empty = embedded mode, no cluster", pattern=_REDIS_URL),
    )

    @property
    def embedded(self) -> bool:
        """True when no Redis is configured: one node, local transport."""
        return not self.url


@attrs.frozen(kw_only=True)
class StoreConfig:
    """``[store]``: the document store behind actor state."""

    backend: StoreBackend = attrs.field(default="sqlite", metadata=rules("document store backend"))
    sqlite_file: str = attrs.field(
        default="tektree.sqlite3",
        metadata=rules("SQLite file, relative to node.data_dir unless absolute"),
    )
    mongo_url: str = attrs.field(
        default="",
        metadata=rules(
            "MongoDB URL; required when backend = mongodb", required_when=("backend", "mongodb")
        ),
    )
    mongo_database: str = attrs.field(default="tektree", metadata=rules("MongoDB database name"))
    timeout_ms: int = attrs.field(
        default=5000, metadata=rules("milliseconds before a store call is cut (timeoutMS)", gt=0)
    )
    max_threads: int = attrs.field(
        default=8, metadata=rules("worker threads running blocking store calls", ge=1)
    )

    def sqlite_path(self, data_dir: Path) -> Path:
        """Where the SQLite file lives: ``sqlite_file`` under ``data_dir`` unless absolute."""
        return data_dir / Path(self.sqlite_file).expanduser()


@attrs.frozen(kw_only=True)
class MailConfig:
    """``[mail]``: how outgoing email leaves (SMTP when ``smtp_host`` is set, else ``.eml``
    files under ``outbox_dir``)."""

    from_address: str = attrs.field(
        default="TekTree <no-reply@tektree.localhost>",
        metadata=rules("sender of outgoing email (From:)"),
    )
    smtp_host: str = attrs.field(
        default="", metadata=rules("SMTP server; empty = write .eml files to outbox_dir")
    )
    smtp_port: int = attrs.field(
        default=587, metadata=rules("SMTP server port", ge=1, le=65535)
    )
    smtp_username: str = attrs.field(
        default="", metadata=rules("SMTP login; empty = no authentication")
    )
    smtp_password: str = attrs.field(default="", metadata=rules("SMTP password"))
    smtp_security: SmtpSecurity = attrs.field(
        default="starttls", metadata=rules("starttls, ssl (implicit TLS) or none")
    )
    timeout_seconds: float = attrs.field(
        default=10.0, metadata=rules("seconds before an SMTP exchange is abandoned", gt=0)
    )
    outbox_dir: str = attrs.field(
        default="mail", metadata=rules(".eml directory, relative to node.data_dir unless absolute")
    )

    def outbox_path(self, data_dir: Path) -> Path:
        return data_dir / Path(self.outbox_dir).expanduser()


def _freeze(value: Any) -> Any:
    """A deep immutable copy of a TOML value: tables become mapping proxies, arrays tuples."""
    if isinstance(value, Mapping):
        return types.MappingProxyType({key: _freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(item) for item in value)
    return value


def freeze_options(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """Converter for ``options``: a read-only deep copy, so a spec never changes under a child."""
    frozen: Mapping[str, Any] = _freeze(value)
    return frozen


@attrs.frozen(kw_only=True)
class ServiceSpec:
    """``type = "service"``: one long-running task the supervisor starts and restarts."""

    type_tag: ClassVar[str] = "service"

    name: str = attrs.field(metadata=rules("child name, unique among its siblings", pattern=_SLUG))
    service: str = attrs.field(
        metadata=rules("builtin service name or 'package.module:attr'", pattern=_SERVICE)
    )
    restart: RestartType = attrs.field(
        default="permanent", metadata=rules("when to restart: always, after a failure, never")
    )
    shutdown_seconds: float = attrs.field(
        default=5.0, metadata=rules("seconds to stop gracefully before cancelling", gt=0)
    )
    options: Mapping[str, Any] = attrs.field(
        default=_EMPTY,
        converter=freeze_options,
        metadata=rules("free-form table passed to the service"),
    )


@attrs.frozen(kw_only=True)
class ActorPoolSpec:
    """``type = "actors"``: the activations of one virtual actor kind, supervised as a pool."""

    type_tag: ClassVar[str] = "actors"

    kind: str = attrs.field(metadata=rules("actor kind, unique in the whole tree", pattern=_SLUG))
    actor: str = attrs.field(
        metadata=rules("actor class 'package.module:Class'", pattern=_IMPORT_PATH)
    )
    restart: RestartType = attrs.field(
        default="transient", metadata=rules("when to restart a failed activation")
    )
    idle_timeout_seconds: float = attrs.field(
        default=300.0, metadata=rules("seconds idle before an activation is passivated", gt=0)
    )
    mailbox_capacity: int = attrs.field(
        default=1000, metadata=rules("messages queued per activation", ge=1)
    )
    overflow: Overflow = attrs.field(
        default="backpressure", metadata=rules("what a full mailbox does to a new message")
    )
    max_restarts: int = attrs.field(
        default=10, metadata=rules("restarts allowed within period_seconds", ge=0)
    )
    period_seconds: float = attrs.field(
        default=10.0, metadata=rules("window of the restart intensity, seconds", gt=0)
    )
    backoff_initial_seconds: float = attrs.field(
        default=0.01, metadata=rules("first restart delay, seconds", ge=0)
    )
    backoff_max_seconds: float = attrs.field(
        default=5.0,
        metadata=rules("longest restart delay, seconds", ge_field="backoff_initial_seconds"),
    )
    max_concurrency: int = attrs.field(
        default=256, metadata=rules("activations of this kind running a turn at once", ge=1)
    )
    batch_size: int = attrs.field(
        default=64, metadata=rules("messages handled per turn before yielding", ge=1)
    )
    options: Mapping[str, Any] = attrs.field(
        default=_EMPTY,
        converter=freeze_options,
        metadata=rules("free-form table passed to the actor kind"),
    )

    @property
    def name(self) -> str:
        """A pool is named by its kind among its siblings."""
        return self.kind


@attrs.frozen(kw_only=True)
class SupervisorSpec:
    """``[supervisor]`` and ``type = "supervisor"``: restart strategy and intensity."""

    type_tag: ClassVar[str] = "supervisor"

    name: str = attrs.field(
        default="root", metadata=rules("supervisor name, unique among its siblings", pattern=_SLUG)
    )
    strategy: Strategy = attrs.field(
        default="one_for_one", metadata=rules("which children restart when one fails")
    )
    max_restarts: int = attrs.field(
        default=3, metadata=rules("restarts allowed within period_seconds", ge=0)
    )
    period_seconds: float = attrs.field(
        default=5.0, metadata=rules("window of the restart intensity, seconds", gt=0)
    )
    backoff_initial_seconds: float = attrs.field(
        default=0.05, metadata=rules("first restart delay, seconds", ge=0)
    )
    backoff_max_seconds: float = attrs.field(
        default=5.0,
        metadata=rules("longest restart delay, seconds", ge_field="backoff_initial_seconds"),
    )
    restart: RestartType = attrs.field(
        default="permanent", metadata=rules("when its parent restarts it (nested only)")
    )
    children: tuple[ChildSpec, ...] = attrs.field(
        default=(), metadata=rules("children in start order ([[...children]])")
    )


ChildSpec: TypeAlias = ServiceSpec | ActorPoolSpec | SupervisorSpec
CHILD_TYPES: Mapping[str, type[ChildSpec]] = types.MappingProxyType(
    {cls.type_tag: cls for cls in (ServiceSpec, ActorPoolSpec, SupervisorSpec)}
)


def default_supervisor() -> SupervisorSpec:
    """The tree a node runs without a file: the root over the timers service."""
    return SupervisorSpec(children=(ServiceSpec(name="timers", service="timers"),))


@attrs.frozen(kw_only=True)
class Config:
    """A node's whole configuration; ``source`` is the file it came from, or ``"<defaults>"``."""

    node: NodeConfig = attrs.field(factory=NodeConfig, metadata=rules("this node"))
    http: HttpConfig = attrs.field(factory=HttpConfig, metadata=rules("the gateway"))
    logging: LoggingConfig = attrs.field(factory=LoggingConfig, metadata=rules("logging"))
    redis: RedisConfig = attrs.field(factory=RedisConfig, metadata=rules("cluster mode"))
    store: StoreConfig = attrs.field(factory=StoreConfig, metadata=rules("document store"))
    mail: MailConfig = attrs.field(factory=MailConfig, metadata=rules("outgoing email"))
    supervisor: SupervisorSpec = attrs.field(
        factory=default_supervisor, metadata=rules("the root supervisor")
    )
    source: str = "<defaults>"
