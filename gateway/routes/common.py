"""What the content routes share: the caller as a reader (:class:`~actors.accounts.Viewer`),
cursor pages, 404s for what is not there, and the query parameters several listings take."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

from actors.accounts import ANONYMOUS, Viewer
from actors.content_targets import TARGET_TYPES
from actors.knowledge import Listing
from gateway.api import Call, Param, path_param
from gateway.problems import Problem

__all__ = ["AREA_FILTER", "TAG_FILTER", "TARGET_ID", "TARGET_TYPE", "found", "page", "viewer_of"]

T = TypeVar("T")

#: The ``area_id`` and ``tag`` filters of the content listings.
AREA_FILTER: Final = Param(name="area_id", schema={"type": "string", "maxLength": 64},
                           description="only what is filed in this area")
TAG_FILTER: Final = Param(name="tag", schema={"type": "string", "maxLength": 30},
                          description="only what carries this tag")
#: A piece of content in a path: its kind and its id.
TARGET_TYPE: Final = path_param("target_type", "the kind of content: "
                                + ", ".join(f"`{t}`" for t in TARGET_TYPES),
                                pattern="^(" + "|".join(TARGET_TYPES) + ")$")
TARGET_ID: Final = path_param("target_id", "the content's id")


async def viewer_of(call: Call) -> Viewer:
    """Who reads: nobody signed in, or the caller with their current role (read from the
    accounts, so a demoted moderator stops seeing hidden content at once)."""
    if call.principal is None:
        return ANONYMOUS
    return Viewer(user_id=call.principal.user_id, role=await call.current_role())


def page(listing: Listing[T], render: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    """A domain listing as a cursor page."""
    return {"items": [render(item) for item in listing.items],
            "next_cursor": listing.next_cursor}


def found(value: T | None, field: str, kind: str, ident: str) -> T:
    """``value``, or a 404 naming ``field`` (the domain's None: missing, or not visible)."""
    if value is None:
        raise Problem("not-found", f"{field}: no {kind} {ident!r}", field=field, rule="exists")
    return value
