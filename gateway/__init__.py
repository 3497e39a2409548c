"""TekTree's HTTP and WebSocket edge: a Quart app served by Hypercorn inside the node.

The gateway is one supervised service of the node's tree (``gateway.service:serve``); it turns
requests into actor messages and holds no domain logic. :func:`gateway.app.create_app` builds
the app for a node; :func:`gateway.service.serve` runs it.
"""

from gateway.app import create_app
from gateway.service import serve

__all__ = ["create_app", "serve"]
