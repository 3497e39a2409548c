"""The cluster: nodes over Redis (membership, placement, single activation, transport, pub/sub).

Embedded mode (no ``redis.url``) uses none of this: one node runs everything in-process.
"""

from tektree.cluster._redis import TRANSIENT_ERRORS, RedisLink, open_redis_link
from tektree.cluster.leases import Lease, LeaseBusy, Leases, LeasesStatistics
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
from tektree.cluster.transport import (
    Inbound,
    StreamTransport,
    TransportBackpressure,
    TransportStatistics,
)

__all__ = [
    "DEFAULT_MAX_QUEUE",
    "FRAME_VERSION",
    "TRANSIENT_ERRORS",
    "Inbound",
    "Lease",
    "LeaseBusy",
    "Leases",
    "LeasesStatistics",
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
    "StreamTransport",
    "Subscription",
    "SubscriptionDropped",
    "TransportBackpressure",
    "TransportStatistics",
    "home",
    "moved",
    "open_redis_link",
    "read_members",
    "score",
]
