"""``/areas``: the hierarchy (by id or slug, children, moves with their breadcrumbs, updates),
what is filed in an area, and following areas (``actors.areas``).

Any signed-in user creates an area (the domain's rule: areas count toward the creator's
``areas_created``); its creator, a moderator or an admin updates, moves and deletes it.
"""

from __future__ import annotations

from typing import Final

from gateway.api import CURSOR, LIMIT, Call, Param, Reply, RouteTable, path_param
from gateway.routes.common import found, page, viewer_of
from gateway.routes.views import area_json, content_item_json

__all__ = ["routes"]

routes = RouteTable("areas", "The hierarchy of areas: breadcrumbs, children, followers")

_AREA: Final = path_param("area_id", "an area id (`area_...`)")


@routes.post("/areas", summary="Create an area", body="AreaRequest", responses={201: "Area"},
             problems=(401, 403, 404, 409, 422))
async def create_area(call: Call) -> Reply:
    """At the top, or under ``parent_id`` (an area the caller sees, less than 8 levels deep).
    ``slug`` defaults to one derived from the title (``-2``, ``-3``... when taken); an explicit
    slug already taken is a 409. Emits ``knowledge.area.created``."""
    body = call.body
    area = await call.gateway.content.areas.create_area(
        call.user.user_id, title=body["title"], slug=body.get("slug"),
        parent_id=body.get("parent_id"), details=body.get("details", ""),
        tags=body.get("tags", ()), visibility=body.get("visibility", "public"),
        correlation_id=call.correlation_id)
    return Reply(area_json(area), status=201, headers={"Location": f"/api/v1/areas/{area.id}"})


@routes.get("/areas", summary="Top-level areas", auth="optional", params=(LIMIT, CURSOR),
            responses={200: "AreaPage"}, problems=(422,))
async def list_areas(call: Call) -> Reply:
    """Newest first, by cursor; areas the caller may not see are left out (a page can be
    short while ``next_cursor`` goes on)."""
    listing = await call.gateway.content.areas.list_children(
        None, viewer=await viewer_of(call), limit=call.query.get("limit", 20),
        cursor=call.query.get("cursor"))
    return Reply(page(listing, area_json))


@routes.get("/areas/{area_id}", summary="An area, by id or by slug", auth="optional",
            params=(path_param("area_id", "an area id (`area_...`) or its slug"),),
            responses={200: "Area"}, problems=(404,))
async def get_area(call: Call) -> Reply:
    """With its breadcrumbs (its ancestors, root first) and counters."""
    ident = call.path["area_id"]
    areas, viewer = call.gateway.content.areas, await viewer_of(call)
    area = await areas.get_area(ident, viewer=viewer) or await areas.get_by_slug(
        ident, viewer=viewer)
    return Reply(area_json(found(area, "area_id", "area with id or slug", ident)))


@routes.get("/areas/{area_id}/children", summary="An area's sub-areas", auth="optional",
            params=(_AREA, LIMIT, CURSOR), responses={200: "AreaPage"}, problems=(404, 422))
async def list_children(call: Call) -> Reply:
    """Newest first, by cursor."""
    listing = await call.gateway.content.areas.list_children(
        call.path["area_id"], viewer=await viewer_of(call), limit=call.query.get("limit", 20),
        cursor=call.query.get("cursor"))
    return Reply(page(listing, area_json))


@routes.get("/areas/{area_id}/content", summary="What is filed in an area", auth="optional",
            params=(_AREA, Param(name="type", schema={
                "type": "string", "enum": ["question", "insight", "discussion", "resource"]},
                description="one kind only"), LIMIT, CURSOR),
            responses={200: "ContentItemPage"}, problems=(404, 422))
async def list_area_content(call: Call) -> Reply:
    """Questions, published insights, discussions and resources that anybody may see, newest
    first, by cursor."""
    kind = call.query.get("type")
    listing = await call.gateway.content.content.list_area_content(
        call.path["area_id"], content_types=None if kind is None else [kind],
        viewer=await viewer_of(call), limit=call.query.get("limit", 20),
        cursor=call.query.get("cursor"))
    return Reply(page(listing, content_item_json))


@routes.patch("/areas/{area_id}", summary="Update an area", params=(_AREA,),
              body="AreaChanges", responses={200: "Area"}, problems=(401, 403, 404, 409, 422))
async def update_area(call: Call) -> Reply:
    """Title, slug, details, tags or visibility (its creator, a moderator or an admin); a new
    title or slug reaches every descendant's breadcrumbs."""
    area = await call.gateway.content.areas.update_area(
        call.path["area_id"], call.user.user_id, call.body, correlation_id=call.correlation_id)
    return Reply(area_json(area))


@routes.post("/areas/{area_id}/move", summary="Move an area", params=(_AREA,),
             body="AreaMove", responses={200: "Area"}, problems=(401, 403, 404, 409, 422))
async def move_area(call: Call) -> Reply:
    """Under ``new_parent_id`` (null: to the top), with all its descendants; their
    breadcrumbs are rewritten in the same step. Under itself or a descendant is a 422
    (``cycle``)."""
    area = await call.gateway.content.areas.move_area(
        call.path["area_id"], call.body["new_parent_id"], call.user.user_id,
        correlation_id=call.correlation_id)
    return Reply(area_json(area))


@routes.route("DELETE", "/areas/{area_id}", summary="Delete an empty area", rate="write",
              params=(_AREA,), responses={204: None}, problems=(401, 403, 404, 409))
async def delete_area(call: Call) -> Reply:
    """Its creator, a moderator or an admin; an area with sub-areas or content is a 409."""
    await call.gateway.content.areas.delete_area(call.path["area_id"], call.user.user_id,
                                                 correlation_id=call.correlation_id)
    return Reply(None, status=204)


@routes.put("/areas/{area_id}/follow", summary="Follow an area", params=(_AREA,),
            responses={200: "Follow"}, problems=(401, 403, 404))
async def follow_area(call: Call) -> Reply:
    """Idempotent: following an area already followed changes nothing (``changed`` false)."""
    area_id = call.path["area_id"]
    changed = await call.gateway.content.areas.follow(area_id, call.user.user_id,
                                                      correlation_id=call.correlation_id)
    return Reply({"area_id": area_id, "following": True, "changed": changed})


@routes.route("DELETE", "/areas/{area_id}/follow", summary="Stop following an area",
              rate="write", params=(_AREA,), responses={200: "Follow"}, problems=(401,))
async def unfollow_area(call: Call) -> Reply:
    """Idempotent, like following (``changed`` false when not following); an area you may no
    longer see is unfollowed all the same."""
    area_id = call.path["area_id"]
    changed = await call.gateway.content.areas.unfollow(area_id, call.user.user_id,
                                                        correlation_id=call.correlation_id)
    return Reply({"area_id": area_id, "following": False, "changed": changed})


@routes.get("/users/me/followed-areas", summary="The areas the signed-in user follows",
            params=(LIMIT, CURSOR), responses={200: "AreaPage"}, problems=(401, 422))
async def list_followed_areas(call: Call) -> Reply:
    """Most recently followed first, by cursor."""
    listing = await call.gateway.content.areas.list_followed(
        call.user.user_id, limit=call.query.get("limit", 20), cursor=call.query.get("cursor"))
    return Reply(page(listing, area_json))
