"""The ``tektree`` command: run a node, check a configuration.

```
tektree run [--config PATH] [--host H] [--port N] [--data-dir DIR] [--name NAME] ...
tektree node --config PATH --name NAME [--role ROLE ...]
tektree config check [--config PATH]
tektree config env
tektree cluster status [--config PATH] [--redis-url URL]
```

Without ``--config``, ``./supervisor.toml`` is used when it exists, else the built-in defaults.
Flags override the file and the ``TEKTREE_*`` environment (see ``tektree config env``).

Exit codes: :data:`EXIT_OK` after a graceful stop (SIGINT or SIGTERM), :data:`EXIT_NODE_FAILED`
when the root supervisor gave up (the node has logged why, as one CRITICAL line) or the node was
stopped by a second signal before it could drain, :data:`EXIT_CONFIG` for a configuration error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import structlog
import trio

from tektree._errors import ConfigError
from tektree._node import Node, NodeFailed
from tektree._telemetry import configure_logging
from tektree.config import Config, env_overrides_markdown, load_config

__all__ = ["DEFAULT_CONFIG_FILE", "EXIT_CONFIG", "EXIT_NODE_FAILED", "EXIT_OK", "main"]

EXIT_OK = 0
EXIT_NODE_FAILED = 1
EXIT_CONFIG = 2
#: Exit code after Ctrl-C before the event loop ran (128 + SIGINT, the shell convention).
EXIT_INTERRUPTED = 130

#: Read from the working directory when no ``--config`` is given.
DEFAULT_CONFIG_FILE = "supervisor.toml"

_log = structlog.get_logger("tektree.cli")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    args = _parser().parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except ConfigError as error:
        print(f"tektree: config error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


# --------------------------------------------------------------------------- arguments


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tektree", description="TekTree: virtual actors on trio, supervised."
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", help="run one embedded node", description="Run one node in this process."
    )
    run.add_argument("--config", metavar="PATH",
                     help=f"TOML configuration (default: ./{DEFAULT_CONFIG_FILE} if it exists, "
                          "else built-in defaults)")
    run.add_argument("--name", help="node name (node.name)")
    _add_node_flags(run)
    run.set_defaults(command=_run, roles=[], cluster_node=False)

    node = commands.add_parser(
        "node", help="run one cluster node",
        description="Run one node of a cluster. Cluster mode needs redis.url; "
                    "with it empty the node runs embedded.",
    )
    node.add_argument("--config", metavar="PATH", required=True, help="TOML configuration")
    node.add_argument("--name", required=True, help="node name, unique in the cluster")
    node.add_argument("--role", dest="roles", action="append", default=[], metavar="ROLE",
                      help="a role this node takes (repeatable)")
    _add_node_flags(node)
    node.set_defaults(command=_run, cluster_node=True)

    config = commands.add_parser("config", help="check or document the configuration")
    config_commands = config.add_subparsers(title="commands", required=True, metavar="COMMAND")
    check = config_commands.add_parser("check", help="load and validate a configuration")
    check.add_argument("--config", metavar="PATH",
                       help=f"TOML configuration (default: ./{DEFAULT_CONFIG_FILE} if it exists, "
                            "else built-in defaults)")
    check.set_defaults(command=_config_check)
    env = config_commands.add_parser("env", help="print the TEKTREE_* variables (markdown)")
    env.set_defaults(command=_config_env)

    cluster = commands.add_parser("cluster", help="inspect the cluster")
    cluster_commands = cluster.add_subparsers(title="cluster commands", required=True,
                                              metavar="COMMAND")
    status = cluster_commands.add_parser(
        "status", help="members, their roles, actor counts and mailbox depths")
    status.add_argument("--config", metavar="PATH", help="TOML configuration (for redis.url)")
    status.add_argument("--redis-url", metavar="URL", help="overrides redis.url")
    status.set_defaults(command=_cluster_status)
    return parser


def _add_node_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address the gateway binds (http.host)")
    parser.add_argument("--port", type=int, help="port the gateway binds; 0 = any (http.port)")
    parser.add_argument("--data-dir", metavar="DIR", help="local data directory (node.data_dir)")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                        help="lowest level logged (logging.level)")
    parser.add_argument("--log-format", choices=["json", "console"],
                        help="log lines as JSON or for humans (logging.format)")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Dotted settings from the flags; None (flag not given) leaves the setting alone."""
    return {
        "http.host": args.host,
        "http.port": args.port,
        "node.data_dir": args.data_dir,
        "node.name": args.name,
        "logging.level": args.log_level,
        "logging.format": args.log_format,
    }


def _load(path: str | None, overrides: dict[str, Any] | None = None) -> Config:
    if path is None and Path(DEFAULT_CONFIG_FILE).is_file():
        path = DEFAULT_CONFIG_FILE
    return load_config(path, overrides=overrides)


# --------------------------------------------------------------------------- commands


def _run(args: argparse.Namespace) -> int:
    config = _load(args.config, _overrides(args))
    data_dir = config.node.resolved_data_dir()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError("node.data_dir", f"cannot create {str(data_dir)!r}: {error}") from None
    configure_logging(level=config.logging.level, fmt=config.logging.format,
                      node=config.node.resolved_name())
    node = Node(config)  # imports the actor classes and services; a bad path is a ConfigError
    node.roles = tuple(args.roles)
    return trio.run(_serve, node, args.roles, args.cluster_node)


def _log_startup(node: Node, roles: list[str], cluster_node: bool) -> None:
    config = node.config
    if config.redis.embedded and cluster_node:
        _log.info("running embedded", roles=roles,
                  reason="cluster mode needs redis.url (or $TEKTREE_REDIS_URL) and it is empty")


async def _serve(node: Node, roles: list[str], cluster_node: bool) -> int:
    """Serve ``node`` until a graceful stop (0), a failure or a forced stop (1).

    The node installs its SIGINT/SIGTERM receiver before its tree starts (first signal: drain
    and stop; second: stop now) and logs "config loaded" once it is in place, so a supervisor
    (or a test) that waits for that line can signal the process safely.
    """
    _log_startup(node, roles, cluster_node)
    try:
        await node.serve(handle_signals=True)
    except NodeFailed:
        return EXIT_NODE_FAILED  # the node has logged why, once, at CRITICAL
    return EXIT_NODE_FAILED if node.forced else EXIT_OK


def _config_check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    Node(config)  # also imports every actor class and service the tree names
    print(f"ok: {config.source}")
    return EXIT_OK


def _cluster_status(args: argparse.Namespace) -> int:
    overrides = {"redis.url": args.redis_url} if args.redis_url else None
    config = _load(args.config, overrides)
    if config.redis.embedded:
        print("tektree: no cluster: redis.url is empty (set it, $TEKTREE_REDIS_URL or "
              "--redis-url)", file=sys.stderr)
        return EXIT_CONFIG
    return trio.run(_print_status, config.redis.url)


async def _print_status(url: str) -> int:
    from tektree.cluster import TRANSIENT_ERRORS, open_redis_link, read_members

    unreachable: tuple[type[BaseException], ...] = (trio.TooSlowError, *TRANSIENT_ERRORS)
    try:
        async with open_redis_link(url) as link:
            with trio.fail_after(10):
                members = await read_members(link, retry=False)
    except unreachable as exc:
        print(f"tektree: redis at {url} is unreachable: {exc!r}", file=sys.stderr)
        return EXIT_NODE_FAILED
    rows = [("NODE", "ROLES", "ACTORS", "QUEUED", "EXPIRES IN")]
    for info in members:
        actors = info.info.get("actors", {})
        queued = info.info.get("queued", {})
        rows.append((
            info.name,
            ",".join(sorted(info.roles)) or "-",
            " ".join(f"{k}={v}" for k, v in sorted(actors.items())) or "0",
            str(sum(queued.values())) if queued else "0",
            f"{info.expires_in_ms / 1000:.1f}s",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    print(f"{len(members)} member(s)")
    return EXIT_OK


def _config_env(args: argparse.Namespace) -> int:
    print(env_overrides_markdown(), end="")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
