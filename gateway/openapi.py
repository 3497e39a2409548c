"""The OpenAPI 3.1 document, written from the route declarations (:mod:`gateway.api`).

Nothing here is maintained by hand per route: each :class:`~gateway.api.Route` gives its path,
parameters, body and response schemas and the problems it may answer; this module adds what
every route shares (the correlation id header, the rate-limit headers and 429 on limited routes,
401 on authenticated ones, 400/413/415/422 on routes with a body, 504 when the domain does not
answer in time) and the components. A method a path does not serve is a 405 problem (not
listed per operation). A test
checks that every rule the app serves is in the document with its schemas.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from gateway.api import Route
from gateway.correlation import CORRELATION_HEADER, CORRELATION_ID_PATTERN
from gateway.problems import PROBLEM_BASE, PROBLEM_CONTENT_TYPE, PROBLEM_TYPES
from gateway.schemas import SCHEMAS

__all__ = ["OPENAPI_VERSION", "openapi_document"]

OPENAPI_VERSION: Final = "3.1.0"
_STATUS_TEXT: Final = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No content", 400: "Bad request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not found", 409: "Conflict",
    413: "Payload too large", 415: "Unsupported media type", 422: "Validation failed",
    429: "Too many requests", 500: "Internal server error", 503: "Not available",
    504: "Timeout",
}
_RATE_HEADERS: Final = {
    "RateLimit-Limit": "requests a full bucket allows (the burst)",
    "RateLimit-Remaining": "requests left in the bucket",
    "RateLimit-Reset": "seconds until the bucket is full again",
}


def _header(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "schema": schema or {"type": "integer"}}


def _problem_response(status: int) -> dict[str, Any]:
    slugs = sorted(slug for slug, (code, _) in PROBLEM_TYPES.items() if code == status)
    types = ", ".join(f"`{PROBLEM_BASE}{slug}`" for slug in slugs)
    response: dict[str, Any] = {
        "description": f"{_STATUS_TEXT.get(status, 'Error')}" + (f" ({types})" if types else ""),
        "headers": {CORRELATION_HEADER: {"$ref": "#/components/headers/CorrelationId"}},
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status == 429:
        response["headers"].update({name: {"$ref": f"#/components/headers/{name}"}
                                    for name in _RATE_HEADERS})
        response["headers"]["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
    if status == 401:
        response["headers"]["WWW-Authenticate"] = _header("the Bearer challenge (RFC 6750)",
                                                          {"type": "string"})
    return response


def _success(route: Route, status: int, schema: str | None) -> dict[str, Any]:
    headers: dict[str, Any] = {CORRELATION_HEADER: {"$ref": "#/components/headers/CorrelationId"}}
    if route.rate is not None:
        headers.update({name: {"$ref": f"#/components/headers/{name}"} for name in _RATE_HEADERS})
    response: dict[str, Any] = {"description": _STATUS_TEXT.get(status, "Success"),
                                "headers": headers}
    if schema is not None:
        response["content"] = {route.media_type: {"schema": {
            "$ref": f"#/components/schemas/{schema}"}}}
    elif route.media_type != "application/json" and status != 204:
        response["content"] = {route.media_type: {"schema": {"type": "string"}}}
    return response


def _problems(route: Route) -> list[int]:
    statuses = set(route.problems) | {400, 500}
    if route.prefix:  # API routes call the domain: its ask may time out
        statuses.add(504)
    if route.auth != "none":
        statuses.add(401)
    if route.rate is not None:
        statuses.add(429)
    if route.body is not None:
        statuses |= {413, 415, 422}
    return sorted(statuses)


def _operation(route: Route) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.operation_id, "summary": route.summary, "tags": [route.tag],
        "parameters": [{"$ref": "#/components/parameters/CorrelationId"}] + [
            {"name": p.name, "in": p.where, "required": p.required,
             "description": p.description, "schema": dict(p.schema)}
            for p in route.params],
        "responses": {},
    }
    if route.description:
        operation["description"] = route.description
    if route.body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{route.body}"}}}}
    for status, schema in sorted(route.responses.items()):
        operation["responses"][str(status)] = _success(route, status, schema)
    for status in _problems(route):
        operation["responses"].setdefault(str(status), _problem_response(status))
    if route.auth == "user":
        operation["security"] = [{"bearerAuth": []}]
    elif route.auth == "optional":
        operation["security"] = [{}, {"bearerAuth": []}]
    else:
        operation["security"] = []
    if route.role is not None:
        operation["x-required-role"] = route.role
    if route.rate is not None:
        operation["x-rate-limit-class"] = route.rate
    return operation


def openapi_document(routes: Sequence[Route], *, tags: Sequence[tuple[str, str]] = (),
                     version: str = "0.1.0") -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``."""
    paths: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for route in routes:
        if route.operation_id in seen:
            raise ValueError(f"operationId {route.operation_id!r} is used twice; rename a "
                             "handler")
        seen.add(route.operation_id)
        paths.setdefault(route.full_path, {})[route.method.lower()] = _operation(route)
    headers: dict[str, Any] = {
        "CorrelationId": _header("the request's correlation id (echoed, or generated)",
                                 {"type": "string", "pattern": f"^{CORRELATION_ID_PATTERN}$"}),
        "Retry-After": _header("seconds to wait before retrying"),
        **{name: _header(text) for name, text in _RATE_HEADERS.items()},
    }
    return {
        "openapi": OPENAPI_VERSION,
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "TekTree API", "version": version,
            "description": "A gamified, real-time knowledge network. Errors are RFC 9457 "
                           "problem details with a stable `type`; lists are paginated by "
                           "cursor (`limit` at most 100, `cursor` = the previous page's "
                           "`next_cursor`).",
        },
        "tags": [{"name": name, "description": text} for name, text in tags],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "headers": headers,
            "parameters": {"CorrelationId": {
                "name": CORRELATION_HEADER, "in": "header", "required": False,
                "description": "your id for this request (generated when absent)",
                "schema": {"type": "string", "pattern": f"^{CORRELATION_ID_PATTERN}$"}}},
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "an RS256 access token from POST /api/v1/auth/login; keys at "
                               "/.well-known/jwks.json"}},
        },
    }
