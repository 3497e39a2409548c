"""RFC 9457 problem details: every error the gateway sends, as ``application/problem+json``.

A :class:`Problem` is raised anywhere in a request (auth, limits, validation, a route) and
rendered once by the app's error handler. Its ``type`` is a URL under :data:`PROBLEM_BASE`
whose last segment is a stable slug from :data:`PROBLEM_TYPES`: clients branch on ``type``,
never on the wording of ``detail``. ``detail`` names the bad field or the rule; ``field`` and
``rule`` say the same as members; ``correlation_id`` is the request's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from quart import Response

__all__ = [
    "PROBLEM_BASE",
    "PROBLEM_CONTENT_TYPE",
    "PROBLEM_TYPES",
    "Problem",
    "json_response",
    "problem",
]

PROBLEM_BASE: Final = "https://tektree.dev/problems/"
PROBLEM_CONTENT_TYPE: Final = "application/problem+json"

#: slug -> (status, title): the stable catalog, documented in the OpenAPI document.
PROBLEM_TYPES: Final[Mapping[str, tuple[int, str]]] = {
    "invalid-json": (400, "Request body is not valid JSON"),
    "invalid-parameter": (400, "Invalid query or path parameter"),
    "invalid-correlation-id": (400, "Invalid correlation id"),
    "unauthorized": (401, "Authentication required"),
    "invalid-token": (401, "Invalid or expired token"),
    "invalid-credentials": (401, "Wrong email or password"),
    "refresh-token-reused": (401, "Refresh token reused; its session is revoked"),
    "session-revoked": (401, "Session revoked"),
    "forbidden": (403, "Forbidden"),
    "cors-origin-not-allowed": (403, "Origin not allowed"),
    "not-found": (404, "Not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "conflict": (409, "Conflict"),
    "payload-too-large": (413, "Request body too large"),
    "unsupported-media-type": (415, "Unsupported media type"),
    "validation-failed": (422, "Validation failed"),
    "rate-limited": (429, "Too many requests"),
    "internal-error": (500, "Internal server error"),
    "not-available": (503, "Not available"),
    "not-ready": (503, "Node not ready"),
    "upstream-timeout": (504, "The domain did not answer in time"),
    "http-error": (400, "HTTP error"),
    "invalid-webhook": (400, "Malformed webhook delivery"),
    "invalid-signature": (401, "Webhook signature refused"),
    "quota-exceeded": (429, "Monthly quota exceeded"),
}


class Problem(Exception):
    """An error response: ``slug`` picks the type (and its default status and title)."""

    def __init__(
        self,
        slug: str,
        detail: str,
        *,
        status: int | None = None,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        if slug not in PROBLEM_TYPES:
            raise ValueError(f"unknown problem type {slug!r}; add it to PROBLEM_TYPES")
        default_status, default_title = PROBLEM_TYPES[slug]
        super().__init__(f"{slug}: {detail}")
        self.slug = slug
        self.status = status or default_status
        self.title = title or default_title
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = {k: v for k, v in extra.items() if v is not None}

    def body(self, correlation_id: str | None) -> dict[str, Any]:
        body = {"type": PROBLEM_BASE + self.slug, "title": self.title, "status": self.status,
                "detail": self.detail, **self.extra}
        if correlation_id is not None:
            body["correlation_id"] = correlation_id
        return body

    def response(self, correlation_id: str | None) -> Response:
        response = json_response(self.body(correlation_id), self.status)
        response.mimetype = PROBLEM_CONTENT_TYPE
        response.headers.update(self.headers)
        return response


#: ``json.dumps(..., separators=(",", ":"))`` without a new encoder on every call.
_compact = json.JSONEncoder(separators=(",", ":")).encode


def json_response(body: Any, status: int = 200) -> Response:
    """``body`` as a JSON response (compact separators: fewer bytes on every reply)."""
    # Bytes and a content type: Quart neither encodes the text nor parses a mimetype.
    return Response(_compact(body).encode(), status=status, content_type="application/json")


def problem(status: int, slug: str, title: str, detail: str, **extra: Any) -> Response:
    """An ``application/problem+json`` response (the correlation id is added by the app)."""
    return Problem(slug, detail, status=status, title=title, **extra).response(None)
