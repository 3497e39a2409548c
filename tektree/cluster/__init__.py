"""The cluster: nodes over Redis (membership, placement, single activation, transport, pub/sub).

Embedded mode (no ``redis.url``) uses none of this: one node runs everything in-process.
"""

from tektree.cluster._redis import TRANSIENT_ERRORS, RedisLink, open_redis_link
from tektree.cluster.membership import MemberInfo, Membership, MembershipView, read_members
from tektree.cluster.placement import Member, NoEligibleMember, home, moved, score
from tektree.cluster.pubsub import (
    DEFAULT_MAX_QUEUE,
    FRAME_VERSION,
    LocalPubSub,
    PublishTimeout,
    PubSub,
    PubSubStats,
    RedisPubSub,
    Subscription,
    SubscriptionDropped,
)

__all__ = [
    "DEFAULT_MAX_QUEUE",
    "FRAME_VERSION",
    "TRANSIENT_ERRORS",
    "LocalPubSub",
    "Member",
    "MemberInfo",
    "Membership",
    "MembershipView",
    "NoEligibleMember",
    "PubSub",
    "PubSubStats",
    "PublishTimeout",
    "RedisLink",
    "RedisPubSub",
    "Subscription",
    "SubscriptionDropped",
    "home",
    "moved",
    "open_redis_link",
    "read_members",
    "score",
]
