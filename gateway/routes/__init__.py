"""The REST routes, one module per resource; :data:`ROUTES` is all of them, in order.

Adding a resource: a module with a :class:`~gateway.api.RouteTable`, its schemas in
:mod:`gateway.schemas`, and one line here; the OpenAPI document and its completeness test
follow by themselves.
"""

from __future__ import annotations

from gateway.api import Route, RouteTable
from gateway.routes import (
    areas,
    auth,
    billing,
    content,
    gamification,
    insights,
    moderation,
    operations,
    question_status,
    search,
    social,
    users,
)

__all__ = ["ROUTES", "TABLES"]

TABLES: tuple[RouteTable, ...] = (
    auth.routes, users.routes, content.routes, gamification.routes, billing.routes,
    operations.routes,
    # the content issue's
    areas.routes, insights.routes, social.routes, question_status.routes, search.routes,
    moderation.routes,
)
ROUTES: tuple[Route, ...] = tuple(route for table in TABLES for route in table.routes)
