"""Operations (no ``/api/v1`` prefix): health, readiness, metrics, the API's own description,
and the token signing keys."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from quart import Response

from gateway.api import Call, Reply, RouteTable
from gateway.problems import Problem, json_response

__all__ = ["routes"]

routes = RouteTable("operations", "Health, readiness, metrics and discovery", prefix="")
_DOCS_PAGE = Path(__file__).parent.parent / "static" / "docs.html"


@cache
def _docs_page() -> str:
    return _DOCS_PAGE.read_text(encoding="utf-8")


@routes.get("/healthz", summary="Liveness", auth="none", rate=None, responses={200: "Health"})
async def healthz(call: Call) -> Reply:
    """The process serves HTTP."""
    return Reply({"status": "ok", "node": call.gateway.node.name})


@routes.get("/readyz", summary="Readiness", auth="none", rate=None, responses={200: "Ready"},
            problems=(503,))
async def readyz(call: Call) -> Reply:
    """Every check passes: the node accepts work, its store answers, and in a cluster Redis
    answers and this node is a member."""
    checks = await call.gateway.node.is_ready()
    failing = sorted(name for name, ok in checks.items() if not ok)
    if failing:
        raise Problem("not-ready", f"readiness checks failing: {', '.join(failing)}",
                      checks=checks)
    return Reply({"status": "ready", "checks": checks})


@routes.get("/metrics", summary="Prometheus metrics", auth="none", rate=None,
            responses={200: None}, media_type="text/plain")
async def metrics(call: Call) -> Reply:
    """The node's registry in the Prometheus text format."""
    return Reply(Response(generate_latest(call.gateway.node.metrics), status=200,
                          headers={"Content-Type": CONTENT_TYPE_LATEST}))


@routes.get("/openapi.json", summary="This API's OpenAPI 3.1 document", auth="none",
            rate=None, responses={200: "OpenApiDocument"})
async def openapi_json(call: Call) -> Reply:
    """Generated from the route declarations."""
    response = json_response(call.gateway.openapi)
    response.headers["Cache-Control"] = "public, max-age=60"
    return Reply(response)


@routes.get("/docs", summary="API documentation", auth="none", rate=None, responses={200: None},
            media_type="text/html")
async def docs(call: Call) -> Reply:
    """A self-contained page rendering /openapi.json (no external scripts)."""
    return Reply(Response(_docs_page(), status=200, mimetype="text/html",
                          headers={"Content-Security-Policy":
                                   "default-src 'self'; script-src 'unsafe-inline' 'self'; "
                                   "style-src 'unsafe-inline'"}))


@routes.get("/.well-known/jwks.json", summary="Token signing keys (JWKS)", auth="none",
            rate=None, responses={200: "Jwks"})
async def jwks(call: Call) -> Reply:
    """The public keys access tokens are signed with (RFC 7517), the current one first."""
    return Reply(call.gateway.tokens.jwks(), headers={"Cache-Control": "public, max-age=300"})
