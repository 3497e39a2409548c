"""``GET /search``: full text over areas, questions and insights, best match first
(``actors.search``: SQLite FTS5 in the embedded store, MongoDB text indexes in production)."""

from __future__ import annotations

from typing import Final

from actors.knowledge import STATUSES
from actors.search import SEARCHED
from gateway.api import CURSOR, LIMIT, Call, Param, Reply, RouteTable
from gateway.routes.common import page, viewer_of
from gateway.routes.views import search_result_json

__all__ = ["routes"]

routes = RouteTable("search", "Full-text search over areas, questions and insights")

_KINDS: Final = "|".join(SEARCHED)


@routes.get("/search", summary="Search", auth="optional", params=(
    Param(name="q", required=True, schema={"type": "string", "minLength": 1, "maxLength": 500},
          description='words (alternatives, ranked), "quoted phrases" (required), -word '
                      "(excluded)"),
    Param(name="type", schema={"type": "string", "pattern": f"^({_KINDS})(,({_KINDS}))*$"},
          description="the kinds searched, comma-separated: " + ", ".join(SEARCHED)
          + " (default: all; with status: question)"),
    Param(name="area", schema={"type": "string", "maxLength": 64},
          description="an area id: what is in it or in any area below it"),
    Param(name="tag", schema={"type": "string", "maxLength": 30}, description="one tag"),
    Param(name="status", schema={"type": "string", "enum": list(STATUSES)},
          description="a question's status (searches questions only)"),
    LIMIT, CURSOR), responses={200: "SearchResultPage"}, problems=(404, 422))
async def search(call: Call) -> Reply:
    """Public areas, questions and published insights nobody hid, by relevance (titles weigh
    3 times the body); by cursor, at most 500 results deep. A malformed query is a 422 naming
    ``q``."""
    query = call.query
    kinds = query.get("type")
    listing = await call.gateway.content.search.search(
        query["q"], content_types=None if kinds is None else kinds.split(","),
        area_id=query.get("area"), tag=query.get("tag"), status=query.get("status"),
        viewer=await viewer_of(call), limit=query.get("limit", 20), cursor=query.get("cursor"))
    return Reply(page(listing, search_result_json))
