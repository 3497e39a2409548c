"""tektree.config: defaults, the shipped supervisor.toml, every error with its path, overrides."""

from __future__ import annotations

import os
import re
import socket
import types
from pathlib import Path
from typing import Any

import attrs
import platformdirs
import pytest

from tektree.config import (
    ENV_OVERRIDES,
    ActorPoolSpec,
    Config,
    ConfigError,
    ServiceSpec,
    SupervisorSpec,
    env_overrides_markdown,
    load_config,
    parse_config,
)

REPO_TOML = Path(__file__).parents[1] / "supervisor.toml"
NO_ENV: dict[str, str] = {}


def _parse(data: dict[str, Any], **kwargs: Any) -> Config:
    kwargs.setdefault("env", NO_ENV)
    return parse_config(data, **kwargs)


def _children(*children: Any, **root: Any) -> dict[str, Any]:
    return {"supervisor": {**root, "children": list(children)}}


SERVICE = {"type": "service", "name": "timers", "service": "timers"}
POOL = {"type": "actors", "kind": "user", "actor": "actors.profile:UserProfileActor"}


# --------------------------------------------------------------------------- defaults


def test_defaults_without_a_file() -> None:
    config = load_config(env=NO_ENV)

    assert config.source == "<defaults>"
    assert config.node.drain_timeout_seconds == 10.0
    assert config.node.ask_timeout_seconds == 5.0
    assert config.node.check_serialization is False
    assert (config.http.enabled, config.http.host, config.http.port) == (True, "127.0.0.1", 8080)
    assert (config.logging.level, config.logging.format) == ("info", "json")
    assert config.redis.url == "" and config.redis.embedded
    assert config.store.backend == "sqlite"
    assert (config.store.timeout_ms, config.store.max_threads) == (5000, 8)
    root = config.supervisor
    assert (root.name, root.strategy, root.max_restarts) == ("root", "one_for_one", 3)
    assert root.children == (ServiceSpec(name="timers", service="timers"),)


def test_child_defaults() -> None:
    config = _parse(_children(SERVICE, POOL, {"type": "supervisor", "name": "inner"}))
    service, pool, inner = config.supervisor.children

    assert isinstance(service, ServiceSpec)
    assert (service.restart, service.shutdown_seconds, dict(service.options)) == (
        "permanent",
        5.0,
        {},
    )
    assert isinstance(pool, ActorPoolSpec)
    assert pool.name == "user"
    assert (pool.restart, pool.overflow, pool.mailbox_capacity) == (
        "transient",
        "backpressure",
        1000,
    )
    assert (pool.idle_timeout_seconds, pool.max_concurrency, pool.batch_size) == (300.0, 256, 64)
    assert (pool.max_restarts, pool.period_seconds) == (10, 10.0)
    assert (pool.backoff_initial_seconds, pool.backoff_max_seconds) == (0.01, 5.0)
    assert isinstance(inner, SupervisorSpec)
    assert (inner.restart, inner.children) == ("permanent", ())


def test_empty_supervisor_table_has_no_children() -> None:
    assert _parse({"supervisor": {}}).supervisor.children == ()


def test_resolved_name_and_data_dir() -> None:
    node = _parse({}).node
    assert node.resolved_name() == f"{socket.gethostname()}-{os.getpid()}"
    assert node.resolved_data_dir() == Path(platformdirs.user_data_dir("tektree"))

    named = _parse({"node": {"name": "n1", "data_dir": "/srv/tektree"}}).node
    assert named.resolved_name() == "n1"
    assert named.resolved_data_dir() == Path("/srv/tektree")


def test_sqlite_path_is_relative_to_data_dir_unless_absolute() -> None:
    data_dir = Path("/srv/tektree")
    assert _parse({}).store.sqlite_path(data_dir) == data_dir / "tektree.sqlite3"
    absolute = _parse({"store": {"sqlite_file": "/var/db/t.sqlite3"}}).store
    assert absolute.sqlite_path(data_dir) == Path("/var/db/t.sqlite3")


# --------------------------------------------------------------------------- the shipped file


def test_repo_supervisor_toml_loads() -> None:
    config = load_config(REPO_TOML, env=NO_ENV)

    assert config.source == str(REPO_TOML)
    assert config.redis.embedded
    assert config.store.backend == "sqlite"
    names = [child.name for child in config.supervisor.children]
    assert names == ["store", "timers", "cluster", "user", "leaderboard", "room", "subscription",
                     "schedule",
                     "gamification", "reminders", "jobs", "gateway"]
    store = config.supervisor.children[0]
    assert isinstance(store, ServiceSpec) and store.service == "store"
    gateway = config.supervisor.children[-1]
    assert isinstance(gateway, ServiceSpec)
    assert gateway.service == "gateway.service:serve"


def _uncomment_examples(text: str) -> str:
    head, marker, tail = text.partition("# An actor pool")
    lines = []
    for line in tail.splitlines():
        if line.startswith("# # ") or re.match(r"# (\[\[|[a-z_]+ = )", line):
            line = line[2:]
        lines.append(line)
    return head + marker + "\n".join(lines) + "\n"


def test_repo_supervisor_toml_commented_examples_are_valid(tmp_path: Path) -> None:
    path = tmp_path / "supervisor.toml"
    path.write_text(_uncomment_examples(REPO_TOML.read_text()))

    children = load_config(path, env=NO_ENV).supervisor.children

    assert [type(child) for child in children] == [
        ServiceSpec,
        ServiceSpec,
        ServiceSpec,
        ActorPoolSpec,
        ActorPoolSpec,
        ActorPoolSpec,
        ActorPoolSpec,
        ActorPoolSpec,  # subscription
        ServiceSpec,
        ServiceSpec,
        ServiceSpec,
        ServiceSpec,
        ActorPoolSpec,
        SupervisorSpec,
    ]
    example, knowledge = children[-2], children[-1]
    assert isinstance(example, ActorPoolSpec)
    assert example.actor == "actors.profile:UserProfileActor"
    assert isinstance(knowledge, SupervisorSpec)
    assert [child.name for child in knowledge.children] == ["question"]


# --------------------------------------------------------------------------- errors


def _error(data: dict[str, Any], **kwargs: Any) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        _parse(data, **kwargs)
    return caught.value


NESTED = {
    "type": "supervisor",
    "name": "inner",
    "children": [{"type": "service", "name": "a", "service": "a"}],
}

ERROR_CASES = [
    pytest.param(
        _children({"type": "supervisor", "name": "s", "stratgy": "one_for_all"}),
        "supervisor.children[0].stratgy",
        "unknown key; did you mean 'strategy'? allowed: type, name, strategy",
        id="unknown-key-suggests",
    ),
    pytest.param(
        {"nodes": {}},
        "nodes",
        "unknown key; did you mean 'node'? allowed: node, http, logging",
        id="unknown-section",
    ),
    pytest.param(
        {"http": {"zzz": 1}},
        "http.zzz",
        "unknown key; allowed: enabled, host, port",
        id="unknown-key-no-suggestion",
    ),
    pytest.param(
        {"node": {"drain_timeout_seconds": "ten"}},
        "node.drain_timeout_seconds",
        "expected a number, got 'ten' (str)",
        id="type-number",
    ),
    pytest.param(
        {"node": {"ask_timeout_seconds": True}},
        "node.ask_timeout_seconds",
        "expected a number, got True (bool)",
        id="bool-is-not-a-number",
    ),
    pytest.param(
        {"http": {"port": True}},
        "http.port",
        "expected an integer, got True (bool)",
        id="bool-is-not-an-int",
    ),
    pytest.param(
        {"http": {"port": 80.5}},
        "http.port",
        "expected an integer, got 80.5 (float)",
        id="float-is-not-an-int",
    ),
    pytest.param(
        {"http": {"enabled": "yes"}},
        "http.enabled",
        "expected a boolean (true or false), got 'yes' (str)",
        id="type-bool",
    ),
    pytest.param(
        {"node": {"name": 7}}, "node.name", "expected a string, got 7 (int)", id="type-str"
    ),
    pytest.param({"http": 3}, "http", "expected a table, got 3 (int)", id="type-table"),
    pytest.param(
        {"node": {"drain_timeout_seconds": float("inf")}},
        "node.drain_timeout_seconds",
        "expected a finite number, got inf",
        id="type-finite",
    ),
    pytest.param(
        _children(SERVICE, POOL, {"type": "supervisor", "name": "s", "strategy": "one_for_none"}),
        "supervisor.children[2].strategy",
        "'one_for_none' is not one of 'one_for_one', 'one_for_all', 'rest_for_one'",
        id="enum",
    ),
    pytest.param(
        {"logging": {"level": "verbose"}},
        "logging.level",
        "'verbose' is not one of 'debug', 'info', 'warning', 'error'",
        id="enum-level",
    ),
    pytest.param(
        {"node": {"drain_timeout_seconds": 0}},
        "node.drain_timeout_seconds",
        "must be > 0, got 0.0",
        id="range-gt",
    ),
    pytest.param(
        {"http": {"port": 65536}}, "http.port", "must be <= 65535, got 65536", id="range-le"
    ),
    pytest.param({"http": {"port": -1}}, "http.port", "must be >= 0, got -1", id="range-ge"),
    pytest.param(
        {"store": {"max_threads": 0}}, "store.max_threads", "must be >= 1, got 0", id="range-min"
    ),
    pytest.param(
        {"supervisor": {"backoff_initial_seconds": 2, "backoff_max_seconds": 1}},
        "supervisor.backoff_max_seconds",
        "must be >= backoff_initial_seconds (2.0), got 1.0",
        id="range-field",
    ),
    pytest.param(
        _children(SERVICE, {"type": "actors", "actor": "a:B"}),
        "supervisor.children[1].kind",
        "required key is missing",
        id="missing-required",
    ),
    pytest.param(
        _children({"name": "x"}),
        "supervisor.children[0].type",
        "required key is missing; one of 'service', 'actors', 'supervisor'",
        id="missing-type",
    ),
    pytest.param(
        _children({"type": "actor"}),
        "supervisor.children[0].type",
        "'actor' is not one of 'service', 'actors', 'supervisor'",
        id="bad-type",
    ),
    pytest.param(
        _children({**SERVICE, "type": "actors"}),
        "supervisor.children[0].name",
        "unknown key; allowed: type, kind, actor",
        id="key-of-another-child-type",
    ),
    pytest.param(
        _children(3),
        "supervisor.children[0]",
        "expected a table, got 3 (int)",
        id="child-not-a-table",
    ),
    pytest.param(
        {"supervisor": {"children": {"type": "service"}}},
        "supervisor.children",
        "expected an array of tables, got {'type': 'service'} (dict)",
        id="children-not-an-array",
    ),
    pytest.param(
        _children({**SERVICE, "name": "Timers"}),
        "supervisor.children[0].name",
        "'Timers' is not a lowercase letter followed by",
        id="pattern-name",
    ),
    pytest.param(
        _children({**SERVICE, "service": "my-service"}),
        "supervisor.children[0].service",
        "'my-service' is not a builtin service name like 'timers' or an import path",
        id="pattern-service",
    ),
    pytest.param(
        _children({**POOL, "actor": "actors.profile.UserProfileActor"}),
        "supervisor.children[0].actor",
        "'actors.profile.UserProfileActor' is not an import path 'package.module:attribute'",
        id="pattern-actor",
    ),
    pytest.param(
        {"redis": {"url": "http://localhost:6379"}},
        "redis.url",
        "'http://localhost:6379' is not empty (embedded mode) or a URL starting with redis://",
        id="pattern-redis-url",
    ),
    pytest.param(
        {"store": {"backend": "mongodb"}},
        "store.mongo_url",
        "required (non-empty) when store.backend = 'mongodb'",
        id="mongo-url-required",
    ),
    pytest.param(
        _children(SERVICE, POOL, {**SERVICE, "service": "other"}),
        "supervisor.children[2].name",
        "'timers' is already the name of supervisor.children[0]",
        id="duplicate-sibling",
    ),
    pytest.param(
        _children(POOL, {"type": "supervisor", "name": "inner", "children": [POOL]}),
        "supervisor.children[1].children[0].kind",
        "actor kind 'user' is already served by supervisor.children[0]",
        id="duplicate-kind-across-tree",
    ),
    pytest.param(
        _children(SERVICE, {**NESTED, "children": [{"type": "supervisor", "strategy": "x"}]}),
        "supervisor.children[1].children[0].strategy",
        "'x' is not one of 'one_for_one', 'one_for_all', 'rest_for_one'",
        id="nested-index-path",
    ),
    pytest.param(
        _children(
            {**NESTED, "children": [{"type": "service", "name": "a", "service": "a", "x": 1}]}
        ),
        "supervisor.children[0].children[0].x",
        "unknown key",
        id="nested-unknown-key",
    ),
]


@pytest.mark.parametrize(("data", "path", "detail"), ERROR_CASES)
def test_errors_name_the_path(data: dict[str, Any], path: str, detail: str) -> None:
    error = _error(data)

    assert error.path == path
    assert error.detail.startswith(detail), error.detail
    assert str(error).startswith(f"{path}: ")


def test_unknown_key_lists_every_allowed_key() -> None:
    error = _error({"logging": {"formt": "json"}})
    assert error.detail == "unknown key; did you mean 'format'? allowed: level, format"


def test_toml_syntax_error_names_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[node]\nname = \n")

    with pytest.raises(ConfigError) as caught:
        load_config(path, env=NO_ENV)

    assert caught.value.path == str(path)
    assert "invalid TOML" in caught.value.detail
    assert "line 2" in caught.value.detail


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"

    with pytest.raises(ConfigError) as caught:
        load_config(path, env=NO_ENV)

    assert caught.value.path == str(path)
    assert "not found" in caught.value.detail


def test_errors_in_the_file_name_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "supervisor.toml"
    path.write_text('[[supervisor.children]]\ntype = "supervisor"\nstratgy = "one_for_all"\n')

    with pytest.raises(ConfigError, match=r"^supervisor\.children\[0\]\.stratgy: unknown key"):
        load_config(path, env=NO_ENV)


def test_int_is_accepted_for_float() -> None:
    node = _parse({"node": {"drain_timeout_seconds": 3}}).node
    assert node.drain_timeout_seconds == 3.0
    assert isinstance(node.drain_timeout_seconds, float)


def test_mongodb_with_url_is_valid() -> None:
    store = _parse({"store": {"backend": "mongodb", "mongo_url": "mongodb://db:27017"}}).store
    assert (store.backend, store.mongo_url) == ("mongodb", "mongodb://db:27017")


@pytest.mark.parametrize("url", ["redis://r:6379/0", "rediss://r:6380", "unix:///tmp/r.sock"])
def test_redis_url_schemes(url: str) -> None:
    redis = _parse({"redis": {"url": url}}).redis
    assert redis.url == url and not redis.embedded


# --------------------------------------------------------------------------- environment


def test_env_overrides_the_file() -> None:
    env = {
        "TEKTREE_NODE_NAME": "n7",
        "TEKTREE_DATA_DIR": "/data",
        "TEKTREE_DRAIN_TIMEOUT_SECONDS": "2.5",
        "TEKTREE_ASK_TIMEOUT_SECONDS": "1",
        "TEKTREE_CHECK_SERIALIZATION": "Yes",
        "TEKTREE_GC_YOUNG_THRESHOLD": "25000",
        "TEKTREE_SWITCH_INTERVAL_MS": "2",
        "TEKTREE_HTTP_HOST": "0.0.0.0",
        "TEKTREE_HTTP_PORT": "9000",
        "TEKTREE_LOG_LEVEL": "debug",
        "TEKTREE_LOG_FORMAT": "console",
        "TEKTREE_REDIS_URL": "redis://r:6379",
        "TEKTREE_STORE_BACKEND": "mongodb",
        "TEKTREE_MONGO_URL": "mongodb://m:27017",
        "TEKTREE_MONGO_DATABASE": "tt",
        "TEKTREE_MAIL_FROM": "Ops <ops@t.io>",
        "TEKTREE_SMTP_HOST": "smtp.t.io",
        "TEKTREE_SMTP_PORT": "2525",
        "TEKTREE_SMTP_USERNAME": "ops",
        "TEKTREE_SMTP_PASSWORD": "pw",
        "UNRELATED": "ignored",
    }

    config = _parse({"http": {"port": 1234}, "node": {"name": "from-file"}}, env=env)

    assert config.node.name == "n7"
    assert config.node.data_dir == "/data"
    assert config.node.drain_timeout_seconds == 2.5
    assert config.node.ask_timeout_seconds == 1.0
    assert config.node.check_serialization is True
    assert config.node.gc_young_threshold == 25_000
    assert (config.http.host, config.http.port) == ("0.0.0.0", 9000)
    assert (config.logging.level, config.logging.format) == ("debug", "console")
    assert config.redis.url == "redis://r:6379"
    assert (config.store.backend, config.store.mongo_url, config.store.mongo_database) == (
        "mongodb",
        "mongodb://m:27017",
        "tt",
    )
    mail = config.mail
    assert (mail.from_address, mail.smtp_host, mail.smtp_port) == ("Ops <ops@t.io>", "smtp.t.io",
                                                                   2525)
    assert (mail.smtp_username, mail.smtp_password) == ("ops", "pw")
    assert set(env) - {"UNRELATED"} == set(ENV_OVERRIDES)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("1", True), ("YES", True), ("false", False), ("0", False), ("no", False)],
)
def test_env_booleans(text: str, expected: bool) -> None:
    config = _parse({}, env={"TEKTREE_CHECK_SERIALIZATION": text})
    assert config.node.check_serialization is expected


@pytest.mark.parametrize(
    ("variable", "value", "detail"),
    [
        ("TEKTREE_HTTP_PORT", "http", "expected an integer, got 'http' (str)"),
        ("TEKTREE_HTTP_PORT", "70000", "must be <= 65535, got 70000"),
        ("TEKTREE_DRAIN_TIMEOUT_SECONDS", "ten", "expected a number, got 'ten' (str)"),
        ("TEKTREE_ASK_TIMEOUT_SECONDS", "-1", "must be > 0, got -1.0"),
        ("TEKTREE_CHECK_SERIALIZATION", "maybe", "expected a boolean (true/false/1/0/yes/no)"),
        ("TEKTREE_LOG_LEVEL", "loud", "'loud' is not one of 'debug', 'info', 'warning'"),
        ("TEKTREE_REDIS_URL", "localhost:6379", "'localhost:6379' is not empty (embedded mode)"),
        ("TEKTREE_STORE_BACKEND", "postgres", "'postgres' is not one of 'sqlite', 'mongodb'"),
    ],
)
def test_bad_env_values_name_the_variable(variable: str, value: str, detail: str) -> None:
    error = _error({}, env={variable: value})

    assert error.path == f"${variable} ({ENV_OVERRIDES[variable]})"
    assert error.detail.startswith(detail), error.detail


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEKTREE_HTTP_PORT", "9123")
    assert load_config().http.port == 9123


def test_every_env_override_names_a_setting() -> None:
    resolved = attrs.resolve_types(Config)
    settings = {
        f"{section.name}.{field.name}"
        for section in attrs.fields(resolved)
        if isinstance(section.type, type) and attrs.has(section.type)
        for field in attrs.fields(section.type)
    }
    assert set(ENV_OVERRIDES.values()) <= settings
    assert all(variable.startswith("TEKTREE_") for variable in ENV_OVERRIDES)


def test_env_overrides_markdown_lists_every_variable() -> None:
    table = env_overrides_markdown()
    rows = table.strip().splitlines()

    assert rows[0] == "| Variable | Setting | Type | Default | Meaning |"
    assert len(rows) == 2 + len(ENV_OVERRIDES)
    assert "| `TEKTREE_HTTP_PORT` | `http.port` | integer | `8080` |" in table
    assert "| `TEKTREE_LOG_LEVEL` | `logging.level` | one of `debug`, `info`" in table
    assert "| `TEKTREE_CHECK_SERIALIZATION` | `node.check_serialization` | boolean | `false` |" in (
        table
    )


# --------------------------------------------------------------------------- overrides


def test_overrides_apply_last() -> None:
    config = _parse(
        {"http": {"port": 1}},
        env={"TEKTREE_HTTP_PORT": "2"},
        overrides={"http.port": 3, "supervisor.strategy": "rest_for_one", "node.name": None},
    )
    assert config.http.port == 3
    assert config.supervisor.strategy == "rest_for_one"
    assert config.node.name == ""


def test_overrides_are_validated_and_named() -> None:
    error = _error({}, env={"TEKTREE_HTTP_PORT": "2"}, overrides={"http.port": "80"})
    assert (error.path, error.detail) == ("http.port", "expected an integer, got '80' (str)")


def test_section_override_replaces_env_labels() -> None:
    error = _error({}, env={"TEKTREE_HTTP_PORT": "2"}, overrides={"http": {"port": -5}})
    assert (error.path, error.detail) == ("http.port", "must be >= 0, got -5")


def test_unknown_override_is_named_with_a_suggestion() -> None:
    error = _error({}, overrides={"http.prot": 1})
    assert error.path == "http.prot"
    assert error.detail.startswith("unknown key; did you mean 'port'?")


def test_override_into_a_plain_setting_is_rejected() -> None:
    error = _error({}, overrides={"http.port.x": 1})
    assert error.path == "http.port.x"
    assert "not a table" in error.detail


def test_overrides_do_not_mutate_the_input() -> None:
    data: dict[str, Any] = {"http": {"port": 1}}
    _parse(data, env={"TEKTREE_HTTP_HOST": "h"}, overrides={"http.port": 2})
    assert data == {"http": {"port": 1}}


# --------------------------------------------------------------------------- nesting


def test_nested_supervisors_keep_order_and_types() -> None:
    inner = {
        "type": "supervisor",
        "name": "knowledge",
        "strategy": "one_for_all",
        "restart": "transient",
        "children": [
            {"type": "actors", "kind": "question", "actor": "actors.k:QuestionActor"},
            {"type": "service", "name": "indexer", "service": "pkg.indexer:run"},
        ],
    }
    root = _parse(_children(SERVICE, inner, POOL, strategy="rest_for_one")).supervisor

    assert root.strategy == "rest_for_one"
    assert [child.name for child in root.children] == ["timers", "knowledge", "user"]
    nested = root.children[1]
    assert isinstance(nested, SupervisorSpec)
    assert (nested.strategy, nested.restart) == ("one_for_all", "transient")
    assert [type(child) for child in nested.children] == [ActorPoolSpec, ServiceSpec]


def test_same_name_in_different_supervisors_is_allowed() -> None:
    inner = {"type": "supervisor", "name": "inner", "children": [SERVICE]}
    root = _parse(_children(SERVICE, inner)).supervisor
    assert [child.name for child in root.children] == ["timers", "inner"]


# --------------------------------------------------------------------------- immutability


def test_config_is_frozen() -> None:
    config = _parse(_children({**SERVICE, "options": {"tick": 1}}, POOL))

    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.http.port = 1  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.supervisor.children[1].kind = "other"  # type: ignore[misc,union-attr]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.supervisor = SupervisorSpec()  # type: ignore[misc]
    assert isinstance(config.supervisor.children, tuple)


def test_options_are_a_read_only_deep_copy() -> None:
    options = {"tick_ms": 10, "nested": {"a": [1, 2]}}
    service = _parse(_children({**SERVICE, "options": options})).supervisor.children[0]
    assert isinstance(service, ServiceSpec)

    options["tick_ms"] = 99
    options["nested"]["a"].append(3)  # type: ignore[index]
    assert service.options["tick_ms"] == 10
    assert service.options["nested"]["a"] == (1, 2)
    assert isinstance(service.options, types.MappingProxyType)
    with pytest.raises(TypeError):
        service.options["tick_ms"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        service.options["nested"]["b"] = 1


def test_options_must_be_a_table() -> None:
    error = _error(_children({**SERVICE, "options": [1]}))
    assert (error.path, error.detail) == (
        "supervisor.children[0].options",
        "expected a table, got [1] (list)",
    )


def test_evolve_keeps_the_config_valid_type() -> None:
    config = _parse({})
    changed = attrs.evolve(config, http=attrs.evolve(config.http, port=0))
    assert (changed.http.port, config.http.port) == (0, 8080)


def test_switch_interval_ms_is_a_node_setting_off_by_default() -> None:
    assert parse_config({}, source="<test>", env={}).node.switch_interval_ms == 0
    config = parse_config({}, source="<test>", env={"TEKTREE_SWITCH_INTERVAL_MS": "0.5"})
    assert config.node.switch_interval_ms == 0.5
    for bad in (-1, 101):
        with pytest.raises(ConfigError, match=r"node\.switch_interval_ms"):
            parse_config({"node": {"switch_interval_ms": bad}}, source="<test>", env={})


def test_gc_young_threshold_is_a_node_setting_off_by_default() -> None:
    assert parse_config({}, source="<test>", env={}).node.gc_young_threshold == 0
    config = parse_config({}, source="<test>", env={"TEKTREE_GC_YOUNG_THRESHOLD": "20000"})
    assert config.node.gc_young_threshold == 20_000
    with pytest.raises(ConfigError, match=r"node\.gc_young_threshold"):
        parse_config({"node": {"gc_young_threshold": -1}}, source="<test>", env={})
