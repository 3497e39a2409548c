"""The Quart app of the edge: every route of :mod:`gateway.routes`, and what all requests share.

Around every request: the correlation id (checked, or made; on the response, in the actor
messages, in the log lines), the body size limit (413), CORS for the allow-listed origins, and
one error path: whatever goes wrong leaves as an RFC 9457 ``application/problem+json`` body
(:mod:`gateway.problems`) whose ``type`` is stable and whose ``correlation_id`` is the request's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import structlog
from quart import Response, g, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from gateway.api import current_request, install
from gateway.context import Gateway
from gateway.correlation import CORRELATION_HEADER, check_correlation_id, new_id
from gateway.cors import Cors
from gateway.failures import problem_for
from gateway.openapi import openapi_document
from gateway.problems import PROBLEM_BASE, PROBLEM_CONTENT_TYPE, Problem, problem
from gateway.routes import ROUTES, TABLES
from tektree import Node, correlation_id

__all__ = ["PROBLEM_BASE", "PROBLEM_CONTENT_TYPE", "create_app", "problem"]

_log = structlog.get_logger("tektree.gateway")


#: How many functions :meth:`_GatewayApp.ensure_async` remembers as coroutine functions.
_ASYNC_KNOWN_MAX: Final = 1024


class _GatewayApp(QuartTrio):
    """QuartTrio that logs unhandled request errors as structlog lines, not through stdlib,
    and that checks a hook or view for being a coroutine function once, not per request."""

    _async_known: dict[int, Callable[..., Any]]  # by id (held, so the id stays its own)

    def ensure_async(self, func: Callable[..., Any]) -> Callable[..., Any]:
        known: dict[int, Callable[..., Any]] = self.__dict__.setdefault("_async_known", {})
        if known.get(id(func)) is func:
            return func
        found: Callable[..., Any] = super().ensure_async(func)
        if found is func and len(known) < _ASYNC_KNOWN_MAX:
            known[id(func)] = func
        return found

    def log_exception(
        self,
        exception_info: tuple[type, BaseException, TracebackType] | tuple[None, None, None],
    ) -> None:
        _log.error("request failed", method=request.method, path=request.path,
                   exc_info=exception_info)


def _http_problem(error: HTTPException, max_body_bytes: int) -> Problem:
    status = error.code or 500
    if status == 404:
        return Problem("not-found", f"no route for {request.method} {request.path}")
    if status == 405:
        allowed = sorted(error.valid_methods or ()) if isinstance(error, MethodNotAllowed) else []
        return Problem("method-not-allowed",
                       f"{request.method} is not allowed on {request.path}"
                       + (f"; allowed: {', '.join(allowed)}" if allowed else ""),
                       headers={"Allow": ", ".join(allowed)} if allowed else None)
    if status == 413:
        return Problem("payload-too-large", f"the body is larger than the {max_body_bytes} "
                       "bytes accepted", field="body", rule="max_body_bytes")
    if status >= 500:
        return Problem("internal-error", "the server failed to handle the request; see its logs")
    return Problem("http-error", error.description or error.name, status=status,
                   title=error.name)


async def _drain_body(response: Response, max_body_bytes: int) -> None:
    """Read what is left of the request body before answering.

    A response sent while the client is still sending its body (a 401, 415 or 400 raised
    before the body was read) leaves Hypercorn's HTTP/1.1 connection waiting for a body nobody
    reads: the next request on that keep-alive connection hangs. So the body is read (it is
    bounded by ``max_body_bytes``; reading it again costs nothing once read), and a body too
    large to read closes the connection instead.
    """
    req = current_request()
    length = req.content_length
    if not length and "chunked" not in req.headers.get("Transfer-Encoding", "").lower():
        return
    if length is not None and length > max_body_bytes:
        response.headers["Connection"] = "close"
        return
    try:
        await req.get_data(cache=True)
    except HTTPException:  # the chunked body passed the limit while it was read
        response.headers["Connection"] = "close"


def create_app(node: Node, gateway: Gateway) -> QuartTrio:
    """The app serving ``node`` through ``gateway`` (see :func:`gateway.context.open_gateway`)."""
    # root_path given: the editable install may present ``gateway`` as a namespace package,
    # whose root Quart cannot find by itself.
    app = _GatewayApp(__name__, root_path=str(Path(__file__).parent), static_folder=None)
    options = gateway.options
    app.config["MAX_CONTENT_LENGTH"] = options.max_body_bytes
    cors = Cors(options.cors_allowed_origins)
    access_log = options.access_log
    gateway.openapi = openapi_document(ROUTES, tags=[(t.tag, t.description) for t in TABLES])
    install(app, gateway, ROUTES)

    @app.before_request
    async def begin() -> Response | None:
        if access_log:
            g.started = time.perf_counter()
        req = current_request()
        headers = req.headers
        cid, error = check_correlation_id(headers.get(CORRELATION_HEADER))
        g.correlation_id = cid
        correlation_id.set(cid)  # every actor message sent now carries it, every log line too
        if error is not None:
            raise Problem("invalid-correlation-id", error, field=CORRELATION_HEADER,
                          rule="pattern")
        length = req.content_length
        if length is not None and length > options.max_body_bytes:
            raise Problem("payload-too-large",
                          f"the body is {length} bytes; at most {options.max_body_bytes} are "
                          "accepted", field="body", rule="max_body_bytes")
        g.origin = origin = headers.get("Origin")
        if (origin is not None and req.method == "OPTIONS"
                and "Access-Control-Request-Method" in headers):
            allowed = cors.preflight(origin, headers["Access-Control-Request-Method"],
                                     headers.get("Access-Control-Request-Headers"))
            return Response("", status=204, headers=allowed)
        return None

    @app.after_request
    async def finish(response: Response) -> Response:
        await _drain_body(response, options.max_body_bytes)
        cid = getattr(g, "correlation_id", None) or new_id()
        response.headers[CORRELATION_HEADER] = cid
        # g.origin is unset when begin did not run (a 404 before any hook).
        origin = g.origin if "origin" in g else request.headers.get("Origin")
        if origin is not None:
            response.headers.update(cors.response_headers(origin))
        if access_log:
            started = getattr(g, "started", None)
            _log.info("http request", method=request.method, path=request.path,
                      status=response.status_code,
                      ms=None if started is None else
                      round((time.perf_counter() - started) * 1000, 2))
        return response

    @app.errorhandler(Problem)
    async def on_problem(error: Problem) -> Response:
        return error.response(getattr(g, "correlation_id", None))

    @app.errorhandler(HTTPException)
    async def on_http_error(error: HTTPException) -> Response:
        found = _http_problem(error, options.max_body_bytes)
        return found.response(getattr(g, "correlation_id", None))

    @app.errorhandler(Exception)
    async def on_error(error: Exception) -> Response:
        found = problem_for(error)
        if found is None:
            _log.error("request failed", method=request.method, path=request.path,
                       exc_info=(type(error), error, error.__traceback__))
            found = Problem("internal-error",
                            "the server failed to handle the request; see its logs")
        return found.response(getattr(g, "correlation_id", None))

    return app
