"""TekTree's HTTP and WebSocket edge: a Quart app served by Hypercorn inside the node.

The gateway is one supervised service of the node's tree (``gateway.service:serve``); it
authenticates, rate-limits and validates each request, turns it into an actor or domain call,
and turns the reply into JSON. It holds no domain rule. :func:`gateway.context.open_gateway`
builds its parts for a node, :func:`gateway.app.create_app` the app, :func:`gateway.service.serve`
runs it; :mod:`gateway.tokens` issues and verifies the access tokens (sockets use it too);
:class:`gateway.ws_hub.WsHub` serves the ``/ws/*`` sockets beside the app.
"""

from gateway.app import create_app
from gateway.context import Gateway, open_gateway
from gateway.options import GatewayOptions, gateway_options
from gateway.problems import Problem
from gateway.service import serve
from gateway.tokens import AccessClaims, TokenAuthority, TokenError
from gateway.ws_hub import WsHub, WsSettings

__all__ = [
    "AccessClaims",
    "Gateway",
    "GatewayOptions",
    "Problem",
    "TokenAuthority",
    "TokenError",
    "WsHub",
    "WsSettings",
    "create_app",
    "gateway_options",
    "open_gateway",
    "serve",
]
