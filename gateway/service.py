"""The gateway as a supervised service: Hypercorn serving :func:`gateway.app.create_app`.

Listed in ``supervisor.toml`` as ``service = "gateway.service:serve"``, after the store, the
cluster service and the actor pools (so it stops first: no new requests while they drain). It
reports the addresses
it bound through ``task_status.started(binds)`` and in ``node.bound["http"]`` (port 0 binds a
free port, and these say which), stops accepting connections when the node starts stopping,
and gives open requests :data:`GRACEFUL_TIMEOUT_SECONDS` to finish.
"""

from __future__ import annotations

import logging
import socket
from functools import partial
from typing import Any, Final

import hypercorn.trio
import structlog
import trio
from hypercorn.config import Config as HypercornConfig

from gateway.app import create_app
from gateway.context import open_gateway
from gateway.options import gateway_options
from gateway.ws_hub import WsHub, WsSettings
from tektree import Node
from tektree.config import HttpConfig, ServiceSpec

__all__ = ["GRACEFUL_TIMEOUT_SECONDS", "hypercorn_config", "serve"]

#: Seconds open requests get to finish once the node stops (Hypercorn's graceful timeout).
GRACEFUL_TIMEOUT_SECONDS = 3.0

_log = structlog.get_logger("tektree.gateway")


class _ToStructlog(logging.Handler):
    """Sends Hypercorn's stdlib log records to structlog, so stderr stays one JSON per line."""

    def emit(self, record: logging.LogRecord) -> None:
        _log.log(record.levelno, record.getMessage(), logger=record.name,
                 exc_info=record.exc_info or False)


def _hypercorn_logger() -> logging.Logger:
    logger = logging.getLogger("tektree.gateway.hypercorn")
    if not any(isinstance(h, _ToStructlog) for h in logger.handlers):
        logger.addHandler(_ToStructlog())
        logger.propagate = False
        # Its info lines ("Running on ...") repeat what "http listening" says.
        logger.setLevel(logging.WARNING)
    return logger


#: Pending connections the listening socket queues before accepting (Hypercorn's default: 100).
LISTEN_BACKLOG: Final = 1024


def hypercorn_config(http: HttpConfig) -> HypercornConfig:
    """Hypercorn settings for ``[http]``: one bind, no access log, a short graceful stop."""
    host = f"[{http.host}]" if ":" in http.host and not http.host.startswith("[") else http.host
    config = HypercornConfig()
    config.bind = [f"{host}:{http.port}"]
    config.accesslog = None
    config.errorlog = _hypercorn_logger()
    config.graceful_timeout = GRACEFUL_TIMEOUT_SECONDS
    # Hypercorn's default backlog of 100 made connect storms (sockets reconnecting after a node
    # restart, the join-storm tests, bench ws) overflow the accept queue: SYN retransmits of 1-3 s.
    # The kernel caps it at net.core.somaxconn.
    config.backlog = LISTEN_BACKLOG
    return config


def _bind_error(host: str, port: int, error: BaseException) -> OSError:
    return OSError(
        getattr(error, "errno", None),
        f"cannot listen on http://{host}:{port}: {error}; free the port or set http.port "
        "(--port, $TEKTREE_HTTP_PORT)",
    )


def _probe_bind(host: str, port: int) -> None:
    """Fail early and clearly on an address in use (hypercorn would also leak its socket)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise _bind_error(host, port, error) from None


async def serve(node: Node, spec: ServiceSpec, *, task_status: trio.TaskStatus[Any]) -> None:
    """Serve HTTP for ``node`` until it stops; idle when ``http.enabled`` is false.

    ``spec.options`` are the gateway's settings (:class:`gateway.options.GatewayOptions`);
    the node's ``store`` service must run before this one.
    """
    options = gateway_options(spec.options, f"gateway service {spec.name!r} options")
    if not node.config.http.enabled or node.stopping.is_set():
        task_status.started([])
        await trio.sleep_forever()
    gateway = await open_gateway(node, options)
    # /ws/* is served by a lean ASGI handler beside the Quart app (gateway.ws_hub).
    hub = WsHub(node, gateway, WsSettings(
        max_queue=options.ws_max_queue, max_frame_bytes=options.ws_max_frame_bytes,
        close_timeout_seconds=options.ws_close_timeout_seconds,
        heartbeat_interval_seconds=options.ws_heartbeat_interval_seconds))
    config = hypercorn_config(node.config.http)
    config.websocket_max_message_size = 16 * options.ws_max_frame_bytes
    run = partial(hub.serve_http, partial(hypercorn.trio.serve, hub.mount(create_app(
        node, gateway)), config, shutdown_trigger=node.stopping.wait))
    http = node.config.http
    _probe_bind(http.host, http.port)
    try:
        async with trio.open_nursery() as nursery:
            try:
                binds: list[str] = await nursery.start(run)
            except* OSError as group:
                error: BaseException = group
                while isinstance(error, BaseExceptionGroup):
                    error = error.exceptions[0]
                raise _bind_error(http.host, http.port, error) from None
            node.bound["http"] = list(binds)
            _log.info("http listening", binds=binds)
            task_status.started(binds)
    finally:
        node.bound.pop("http", None)
    if not node.stopping.is_set():
        raise RuntimeError(f"hypercorn stopped serving {binds} while the node runs")
    # Hypercorn returned because the node is stopping. Returning too would look like the exit
    # of a permanent child and get the gateway restarted mid-shutdown: wait to be stopped.
    _log.info("http stopped", binds=binds)
    await trio.sleep_forever()
