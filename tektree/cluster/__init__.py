"""The cluster: nodes over Redis (membership, placement, single activation, transport, pub/sub).

Embedded mode (no ``redis.url``) uses none of this: one node runs everything in-process.
"""

from tektree.cluster._redis import TRANSIENT_ERRORS, RedisLink, open_redis_link

__all__ = ["TRANSIENT_ERRORS", "RedisLink", "open_redis_link"]
