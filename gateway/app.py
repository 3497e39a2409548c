"""The Quart app of the edge: health, readiness, metrics, and problem+json errors.

Every error leaves as an RFC 9457 ``application/problem+json`` body whose ``type`` is a URL
under :data:`PROBLEM_BASE`, so clients branch on ``type``, never on the wording of ``detail``.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from tektree import Node

__all__ = ["PROBLEM_BASE", "PROBLEM_CONTENT_TYPE", "create_app", "problem"]

PROBLEM_BASE = "https://tektree.dev/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"

_log = structlog.get_logger("tektree.gateway")


def problem(status: int, slug: str, title: str, detail: str, **extra: Any) -> Response:
    """An ``application/problem+json`` response; ``slug`` completes the ``type`` URL."""
    body = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail}
    response = _json_response({**body, **extra}, status)
    response.mimetype = PROBLEM_CONTENT_TYPE
    return response


def _json_response(body: dict[str, Any], status: int) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


class _GatewayApp(QuartTrio):
    """QuartTrio that logs unhandled request errors as structlog lines, not through stdlib."""

    def log_exception(
        self,
        exception_info: tuple[type, BaseException, TracebackType] | tuple[None, None, None],
    ) -> None:
        _log.error("request failed", method=request.method, path=request.path,
                   exc_info=exception_info)


def create_app(node: Node) -> QuartTrio:
    """The app serving ``node``: ``/healthz``, ``/readyz``, ``/metrics``, problem+json errors."""
    # root_path given: the editable install may present ``gateway`` as a namespace package,
    # whose root Quart cannot find by itself.
    app = _GatewayApp(__name__, root_path=str(Path(__file__).parent))

    @app.get("/healthz")
    async def healthz() -> Response:
        """Liveness: the process serves HTTP."""
        return _json_response({"status": "ok", "node": node.name}, 200)

    @app.get("/readyz")
    async def readyz() -> Response:
        """Readiness: every check of the node passes (the node accepts work, its store...)."""
        checks = await node.is_ready()
        failing = sorted(name for name, ok in checks.items() if not ok)
        if not failing:
            return _json_response({"status": "ready", "checks": checks}, 200)
        return problem(
            503, "not-ready", "Node not ready",
            f"readiness checks failing: {', '.join(failing)}", checks=checks,
        )

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus text exposition of the node's registry."""
        return Response(generate_latest(node.metrics), status=200,
                        headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        if status == 404:
            return problem(404, "not-found", "Not found", f"no route for {request.path}")
        if status == 405:
            return problem(405, "method-not-allowed", "Method not allowed",
                           f"{request.method} is not allowed on {request.path}")
        if status >= 500:
            return problem(status, "internal-error", "Internal server error",
                           "the server failed to handle the request; see its logs")
        return problem(status, "http-error", error.name, error.description or error.name)

    return app
