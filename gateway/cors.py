"""CORS for browsers, from an allow-list of origins (``options.cors_allowed_origins``).

Only listed origins get ``Access-Control-Allow-Origin`` (their own origin echoed, with
``Vary: Origin``); there is no wildcard and no credentials mode (the API takes bearer tokens,
not cookies). A preflight from a listed origin is answered 204 with the methods and headers the
API accepts; from any other origin it is a 403 problem naming the origin.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from gateway.problems import Problem

__all__ = ["ALLOWED_HEADERS", "EXPOSED_HEADERS", "Cors"]

ALLOWED_METHODS: Final = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
ALLOWED_HEADERS: Final = frozenset({"authorization", "content-type", "x-correlation-id",
                                    "accept", "accept-language", "content-language"})
EXPOSED_HEADERS: Final = ("X-Correlation-ID, RateLimit-Limit, RateLimit-Remaining, "
                          "RateLimit-Reset, Retry-After, Location, WWW-Authenticate")
MAX_AGE_SECONDS: Final = 600


class Cors:
    """The allow-list and the headers it sends."""

    def __init__(self, origins: Iterable[str]) -> None:
        self.origins = frozenset(origins)

    def allowed(self, origin: str | None) -> bool:
        return origin is not None and origin in self.origins

    def preflight(self, origin: str, method: str | None, headers: str | None) -> dict[str, str]:
        """The headers of a 204 answer to a preflight, or a 403 :class:`Problem`."""
        if not self.allowed(origin):
            raise Problem("cors-origin-not-allowed",
                          f"Origin {origin!r} is not allowed to call this API; allowed: "
                          f"{', '.join(sorted(self.origins)) or 'none'}",
                          field="Origin", rule="cors")
        requested = [h.strip() for h in (headers or "").split(",") if h.strip()]
        refused = [h for h in requested if h.lower() not in ALLOWED_HEADERS]
        if refused:
            raise Problem("cors-origin-not-allowed",
                          f"header {refused[0]!r} is not allowed cross-origin; allowed: "
                          f"{', '.join(sorted(ALLOWED_HEADERS))}",
                          field="Access-Control-Request-Headers", rule="cors")
        return {
            "Access-Control-Allow-Origin": origin, "Vary": "Origin",
            "Access-Control-Allow-Methods": ALLOWED_METHODS,
            "Access-Control-Allow-Headers": ", ".join(requested) or "Content-Type",
            "Access-Control-Max-Age": str(MAX_AGE_SECONDS),
        }

    def response_headers(self, origin: str | None) -> Mapping[str, str]:
        """What a response to ``origin`` carries (nothing for an origin not listed)."""
        if not self.allowed(origin):
            return {}
        assert origin is not None
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                "Access-Control-Expose-Headers": EXPOSED_HEADERS}
