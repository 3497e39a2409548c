"""Topics: fan-out of one published payload to many subscribers (rooms, live leaderboards).

Two implementations behind the :class:`PubSub` protocol:

- :class:`LocalPubSub` (embedded mode): subscribers in this process only.
- :class:`RedisPubSub` (cluster mode): one Redis pub/sub connection per node, owned by
  :meth:`RedisPubSub.run`, subscribed to ``{prefix}:topic:<name>`` for each topic that has at
  least one subscriber on this node (SUBSCRIBE on the first, UNSUBSCRIBE after the last leaves).

Delivery
--------
A payload is any codec value (see :mod:`tektree._codec`). :meth:`~PubSub.publish` encodes the
frame ``[FRAME_VERSION, node, seq, payload]`` exactly once, whatever the number of subscribers;
``seq`` counts the node's publishes (for tracing). Each node decodes a frame once and hands the
*same* decoded object to every subscriber of the topic on that node: treat payloads as
read-only. Subscribers on the publishing node get the decoded copy too (never the publisher's
own object), so a payload looks the same wherever it was published.

Subscribers on the publishing node are served directly in process, before the frame goes to
Redis; the copy Redis echoes back to the publishing node is recognised by its node id and
suppressed. So a node's own rooms keep working while Redis is down, and each subscriber sees a
payload once. Node names must be unique in the cluster (membership guarantees it): a second
process with the same name would ignore the other's frames as echoes.

Slow subscribers never stall a topic: each :class:`Subscription` has a bounded queue
(``max_queue``); a payload that finds it full drops that subscription (its iterator raises
:class:`SubscriptionDropped` with the reason, queued payloads are discarded, the drop is counted
in :meth:`~PubSub.stats`) and the other subscribers carry on.

A reader that holds no task parked on its subscription (thousands of idle sockets, whose
writer task starts only when there is something to write) passes ``on_ready``: it is called,
synchronously and from the publisher's fan-out, when a payload lands in the subscription's
empty queue with no task waiting on it, and once when the subscription is dropped. It must
not block or raise (it should only schedule the read).

Fire-and-forget
---------------
Redis pub/sub keeps nothing. Payloads published while a node's pub/sub connection is down are
not replayed to that node's subscribers; publishing itself retries through
:meth:`RedisLink.call` until Redis answers or the publish timeout passes
(:class:`PublishTimeout`, by then local subscribers already have the payload). After Redis
restarts, :meth:`RedisPubSub.run` reconnects and re-subscribes every current topic; ``ready``
is false meanwhile. Rooms that must not lose a message use the stream transport instead and
resync their members from the source of truth after a :class:`SubscriptionDropped`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Final, Protocol, final

import attrs
import structlog
import trio
from coredis.patterns.pubsub import PubSub as _CoredisPubSub

from tektree._codec import MAX_FRAME_BYTES, decode_value, encode_value
from tektree._errors import CodecError, TekTreeError
from tektree._pool import backoff_delay
from tektree.cluster._redis import TRANSIENT_ERRORS, RedisLink

__all__ = [
    "DEFAULT_MAX_QUEUE",
    "FRAME_VERSION",
    "LocalPubSub",
    "PubSub",
    "PubSubStats",
    "PublishTimeout",
    "RedisPubSub",
    "Subscription",
    "SubscriptionDropped",
]

FRAME_VERSION: Final = 1
"""The first element of every pub/sub frame; frames of another version are counted as bad."""
DEFAULT_MAX_QUEUE: Final = 256
"""Payloads a subscription may hold unread before it is dropped as too slow."""
SUBSCRIBE_BATCH: Final = 512
"""Channels per SUBSCRIBE/UNSUBSCRIBE command when (re-)subscribing many topics at once."""

_log = structlog.get_logger("tektree.cluster.pubsub")


class SubscriptionDropped(TekTreeError):
    """A subscription was closed by the pub/sub, not by its owner; ``reason`` says why."""

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(
            f"subscription to topic {topic!r} was dropped: {reason}; subscribe again and resync "
            "from the source of truth (payloads in between are lost), or read faster / raise "
            "max_queue"
        )
        self.topic = topic
        self.reason = reason


class PublishTimeout(TekTreeError):
    """A publish could not reach Redis within its timeout (local subscribers already got it)."""

    def __init__(self, topic: str, timeout: float) -> None:
        super().__init__(
            f"publish to topic {topic!r} did not reach Redis within {timeout} s (Redis "
            "unreachable); pub/sub is fire-and-forget: drop the payload, retry later, or pass "
            "a longer timeout"
        )
        self.topic = topic
        self.timeout = timeout


@attrs.frozen(kw_only=True)
class PubSubStats:
    """A snapshot of one pub/sub's counters (see :meth:`PubSub.stats`)."""

    topics: int
    """Topics with at least one subscriber on this node."""
    subscribers: int
    """Open subscriptions on this node."""
    published: int
    """Payloads published from this node (each encoded once)."""
    delivered: int
    """Payloads queued to subscriptions on this node (one per subscriber per payload)."""
    dropped: int
    """Subscriptions dropped because their queue was full."""
    received: int = 0
    """Frames from other nodes read off Redis (cluster mode)."""
    bad_frames: int = 0
    """Frames off Redis that did not decode to a valid frame: counted, logged and skipped."""
    publish_timeouts: int = 0
    """Publishes that did not reach Redis within their timeout."""
    reconnects: int = 0
    """Times the pub/sub connection came back after being lost."""


class PubSub(Protocol):
    """What rooms and live leaderboards use; :class:`LocalPubSub` or :class:`RedisPubSub`."""

    def subscribe(
        self, topic: str, *, max_queue: int = DEFAULT_MAX_QUEUE,
        on_ready: Callable[[Subscription], None] | None = None,
    ) -> Subscription:
        """A new subscription to ``topic``; payloads published from now on are queued to it."""
        ...

    async def publish(self, topic: str, payload: object, *, timeout: float | None = None) -> None:
        """Send ``payload`` to every subscriber of ``topic`` (fire-and-forget)."""
        ...

    async def wait_synced(self) -> None:
        """Wait until every topic subscribed here receives payloads from every node."""
        ...

    def may_reach(self, topic: str) -> bool:
        """False when a payload published to ``topic`` now would surely reach no subscriber
        (a publisher may then skip building it); True when it may reach one."""
        ...

    def stats(self) -> PubSubStats:
        """A snapshot of the counters."""
        ...


@final
class Subscription:
    """One subscriber's bounded queue of payloads for one topic.

    Iterate it (``async for payload in sub``), or call :meth:`receive` /
    :meth:`receive_nowait`. Close it with :meth:`close` or by using it as a context manager;
    iteration then ends. If the pub/sub drops it for being too slow, reading raises
    :class:`SubscriptionDropped`.
    """

    __slots__ = ("_core", "_dropped", "_lot", "_on_ready", "_queue", "closed", "max_queue",
                 "topic")

    def __init__(
        self, core: _Topics, topic: str, max_queue: int,
        on_ready: Callable[[Subscription], None] | None = None,
    ) -> None:
        self.topic = topic
        self.max_queue = max_queue
        self.closed = False
        self._core = core
        #: The payloads waiting, made when one lands and dropped when drained: an empty deque
        #: is ~760 bytes, and thousands of idle sockets hold a subscription each.
        self._queue: deque[Any] | None = None
        #: Where reading tasks park, made when the first one does (idle sockets have none).
        self._lot: trio.lowlevel.ParkingLot | None = None
        self._dropped: str | None = None
        self._on_ready = on_ready

    def __repr__(self) -> str:
        state = "dropped" if self._dropped else "closed" if self.closed else "open"
        return f"<Subscription {self.topic!r} {state} {self.pending}/{self.max_queue}>"

    @property
    def dropped_reason(self) -> str | None:
        """Why the pub/sub dropped this subscription, or ``None``."""
        return self._dropped

    @property
    def pending(self) -> int:
        """Payloads queued and not yet read."""
        queue = self._queue
        return 0 if queue is None else len(queue)

    def receive_nowait(self) -> Any:
        """The next payload; ``trio.WouldBlock`` if none is queued.

        Raises :class:`SubscriptionDropped` once dropped, ``trio.EndOfChannel`` once closed.
        """
        queue = self._queue
        if queue:
            payload = queue.popleft()
            if not queue:
                self._queue = None
            return payload
        if self._dropped is not None:
            raise SubscriptionDropped(self.topic, self._dropped)
        if self.closed:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    async def receive(self) -> Any:
        """The next payload, waiting for one; cancelling it takes nothing off the queue."""
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            payload = self.receive_nowait()
        except trio.WouldBlock:
            pass
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return payload
        while True:
            lot = self._lot
            if lot is None:
                lot = self._lot = trio.lowlevel.ParkingLot()
            await lot.park()
            try:
                return self.receive_nowait()
            except trio.WouldBlock:
                continue

    def close(self) -> None:
        """Leave the topic (idempotent): queued payloads are discarded, readers see the end."""
        if self.closed:
            return
        self.closed = True
        self._queue = None
        self._core._remove(self)
        if self._lot is not None:
            self._lot.unpark_all()

    def _drop(self, reason: str) -> None:
        self._dropped = reason
        self.close()
        _log.warning("pubsub subscription dropped", topic=self.topic, reason=reason)
        if self._on_ready is not None:
            self._on_ready(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None


def _check_topic(topic: object) -> None:
    if type(topic) is not str or not topic:
        raise ValueError(f"a topic is a non-empty str, got {topic!r:.80}; name it, e.g. 'room:r1'")


class _Topics:
    """The node-local half shared by both implementations: subscribers, framing, fan-out."""

    def __init__(self, node: str) -> None:
        if type(node) is not str or not node:
            raise ValueError(f"node must be a non-empty str, got {node!r:.80}; pass the node name")
        self.node = node
        #: A topic's subscribers: the one Subscription itself while it has one (a socket's own
        #: topic, e.g. a user's notifications: a one-entry dict would be ~220 bytes more each),
        #: an insertion-ordered dict of them once it has more.
        self._topics: dict[str, Subscription | dict[Subscription, None]] = {}
        self._subscribers = 0
        self._seq = 0
        self._published = 0
        self._delivered = 0
        self._dropped = 0

    def subscribe(
        self, topic: str, *, max_queue: int = DEFAULT_MAX_QUEUE,
        on_ready: Callable[[Subscription], None] | None = None,
    ) -> Subscription:
        """A new subscription to ``topic``, receiving the payloads published from now on;
        ``on_ready`` (optional) is called when a payload waits with no task parked on it
        (see the module docstring)."""
        _check_topic(topic)
        if type(max_queue) is not int or max_queue < 1:
            raise ValueError(
                f"max_queue must be an int >= 1, got {max_queue!r:.40}; it bounds the payloads "
                "a slow subscriber may hold before it is dropped"
            )
        sub = Subscription(self, topic, max_queue, on_ready)
        subs = self._topics.get(topic)
        self._subscribers += 1
        if subs is None:
            self._topics[topic] = sub
            self._topics_changed()
        elif type(subs) is Subscription:
            self._topics[topic] = {subs: None, sub: None}
        else:
            subs[sub] = None
        return sub

    def _remove(self, sub: Subscription) -> None:
        topic = sub.topic
        subs = self._topics.get(topic)
        if subs is sub:
            del self._topics[topic]
            self._subscribers -= 1
            self._topics_changed()
            return
        if type(subs) is not dict or subs.pop(sub, False) is False:
            return
        self._subscribers -= 1
        if len(subs) == 1:
            self._topics[topic] = next(iter(subs))

    def _topics_changed(self) -> None:
        """Hook: a topic gained its first subscriber or lost its last one."""

    def _frame(self, topic: str, payload: object) -> bytes:
        """The wire frame, encoded once; raises CodecError naming the topic."""
        try:
            frame = encode_value([FRAME_VERSION, self.node, self._seq + 1, payload])
        except CodecError as exc:
            raise CodecError(f"cannot publish to topic {topic!r}: {exc.detail}",
                             what="value") from exc
        if len(frame) > MAX_FRAME_BYTES:
            raise CodecError(
                f"cannot publish to topic {topic!r}: the frame is {len(frame)} bytes, above "
                f"the {MAX_FRAME_BYTES}-byte limit; publish a reference (an id) instead",
                what="value",
            )
        self._count_published()
        return frame

    def _count_published(self) -> None:
        """One more publish from this node: its sequence number and the counter."""
        self._seq += 1
        self._published += 1

    def _deliver_frame(self, topic: str, frame: bytes) -> None:
        """Fan a frame published on this node out to this node's subscribers (one decode)."""
        if topic in self._topics:
            self._fan_out(topic, decode_value(frame)[3])

    def _fan_out(self, topic: str, payload: Any) -> None:
        found = self._topics.get(topic)
        if found is None:
            return
        subs: Iterable[Subscription] = (found,) if type(found) is Subscription else found
        full: list[Subscription] | None = None
        for sub in subs:
            queue = sub._queue
            if queue is None:
                queue = sub._queue = deque((payload,))
            elif len(queue) >= sub.max_queue:
                if full is None:
                    full = []
                full.append(sub)
                continue
            else:
                queue.append(payload)
            lot = sub._lot
            if lot:
                lot.unpark()
            elif sub._on_ready is not None and len(queue) == 1:
                sub._on_ready(sub)
        delivered = 1 if type(found) is Subscription else len(found)
        if full is not None:
            delivered -= len(full)
            for sub in full:
                self._dropped += 1
                sub._drop(f"its queue of {sub.max_queue} payloads was full (a slow subscriber)")
        self._delivered += delivered

    def _stats(self, **redis: int) -> PubSubStats:
        return PubSubStats(
            topics=len(self._topics), subscribers=self._subscribers, published=self._published,
            delivered=self._delivered, dropped=self._dropped, **redis,
        )


@final
class LocalPubSub(_Topics):
    """Embedded mode: topics within this process. Frames are encoded as in cluster mode, so a
    payload the wire cannot carry fails here too, once the topic has a subscriber: a publish
    to a topic nobody here listens to encodes nothing (it is counted as published, as a
    Redis PUBLISH that reaches no subscriber is)."""

    #: Publishes between two yields to the scheduler (as the actor system's local tells do):
    #: a publish only queues, and a full trio checkpoint costs more than the publish itself.
    YIELD_EVERY = 32

    def __init__(self, *, node: str = "local") -> None:
        super().__init__(node)
        self._budget = self.YIELD_EVERY

    async def publish(self, topic: str, payload: object, *, timeout: float | None = None) -> None:
        """Queue ``payload`` to every subscriber of ``topic``; never blocks (``timeout`` is
        accepted for the protocol and unused). A cancelled caller is cancelled here before
        anything is queued; the scheduler gets a turn every ``YIELD_EVERY`` publishes."""
        _check_topic(topic)
        await trio.lowlevel.checkpoint_if_cancelled()
        if topic in self._topics:
            self._deliver_frame(topic, self._frame(topic, payload))
        else:  # nobody to hand it to: no frame (most notifications of offline users)
            self._count_published()
        self._budget -= 1
        if self._budget <= 0:
            self._budget = self.YIELD_EVERY
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def wait_synced(self) -> None:
        """Always synced: a checkpoint."""
        await trio.lowlevel.checkpoint()

    def may_reach(self, topic: str) -> bool:
        """Whether ``topic`` has a subscriber (all of them are in this process)."""
        return topic in self._topics

    def stats(self) -> PubSubStats:
        return self._stats()


@final
class RedisPubSub(_Topics):
    """Cluster mode: this node's topics over one Redis pub/sub connection.

    Start :meth:`run` in the node's nursery (``await nursery.start(pubsub.run)``); subscribing
    and publishing work before and after it, Redis subscriptions only while it runs.
    ``publish_timeout_seconds`` bounds a publish whose ``timeout`` is ``None`` (``None`` here:
    retry until Redis answers).
    """

    def __init__(
        self, link: RedisLink, *, node: str, publish_timeout_seconds: float | None = 5.0
    ) -> None:
        super().__init__(node)
        if publish_timeout_seconds is not None and not publish_timeout_seconds > 0:
            raise ValueError(
                f"publish_timeout_seconds must be > 0 or None, got {publish_timeout_seconds!r}"
            )
        self.link = link
        self.publish_timeout_seconds = publish_timeout_seconds
        self.ready = False
        """True while the pub/sub connection is up (every topic of the moment it connected
        re-subscribed); :meth:`wait_synced` also waits for topics subscribed since."""
        self._prefix = link.key("topic", "").encode()
        self._subscribed: set[str] = set()
        self._wake = trio.Event()
        self._state = trio.lowlevel.ParkingLot()
        self._running = False
        self._received = 0
        self._bad_frames = 0
        self._publish_timeouts = 0
        self._reconnects = 0
        self._connected_before = False
        self._lost_logged = False

    def channel(self, topic: str) -> str:
        """The Redis channel of ``topic``: ``{prefix}:topic:<topic>``."""
        return self.link.key("topic", topic)

    async def publish(self, topic: str, payload: object, *, timeout: float | None = None) -> None:
        """Queue ``payload`` to this node's subscribers of ``topic``, then PUBLISH it to Redis.

        Retries while Redis is unreachable, for at most ``timeout`` seconds (``None``: the
        ``publish_timeout_seconds`` given at construction), then raises :class:`PublishTimeout`.
        Cancelled or timed out, the payload may already have reached some subscribers.
        """
        _check_topic(topic)
        await trio.lowlevel.checkpoint_if_cancelled()
        frame = self._frame(topic, payload)
        self._deliver_frame(topic, frame)
        channel = self.channel(topic)
        limit = self.publish_timeout_seconds if timeout is None else timeout
        with trio.move_on_after(math.inf if limit is None else limit):
            await self.link.call(lambda client: client.publish(channel, frame))
            return
        self._publish_timeouts += 1
        raise PublishTimeout(topic, math.inf if limit is None else limit)

    def _synced(self) -> bool:
        return self.ready and self._subscribed == self._topics.keys()

    async def wait_synced(self) -> None:
        """Wait until the pub/sub connection is up and subscribed to every current topic."""
        await trio.lowlevel.checkpoint()
        while not self._synced():
            await self._state.park()

    def may_reach(self, topic: str) -> bool:
        """Always True: other nodes' subscribers are not known here."""
        return True

    def stats(self) -> PubSubStats:
        return self._stats(
            received=self._received, bad_frames=self._bad_frames,
            publish_timeouts=self._publish_timeouts, reconnects=self._reconnects,
        )

    def _topics_changed(self) -> None:
        self._wake.set()

    # -- the connection -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the node's pub/sub connection until cancelled: (re)connect with backoff,
        (re)subscribe the current topics, read frames and fan them out.

        Reports started after the first connection succeeds or fails (a Redis that is down at
        boot does not hold the node's startup; ``ready`` says which).
        """
        if self._running:
            raise RuntimeError(f"RedisPubSub.run is already running for node {self.node!r}; "
                               "start it once per node")
        self._running = True
        started = False
        attempt = 0
        try:
            while True:
                lost: BaseException = ConnectionError("pub/sub connection ended")
                try:
                    async with self._open() as pubsub:
                        await self._reconcile(pubsub)
                        attempt = 0
                        self._mark(True)
                        if not started:
                            started = True
                            task_status.started()
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(self._keep_reconciled, pubsub)
                            await self._read(pubsub)
                except* TRANSIENT_ERRORS as group:
                    lost = group.exceptions[0]
                self._subscribed = set()
                self._mark(False, lost)
                if not started:
                    started = True
                    task_status.started()
                attempt += 1
                await trio.sleep(backoff_delay(attempt, 0.05, 2.0))
        finally:
            self._running = False
            self._subscribed = set()
            self.ready = False
            self._state.unpark_all()

    def _open(self) -> _CoredisPubSub[bytes]:
        # retry_policy=None: a lost connection surfaces here, so we mark not-ready and
        # re-subscribe ourselves rather than coredis retrying out of sight.
        return self.link.client.pubsub(
            retry_policy=None, ignore_subscribe_messages=True, subscription_timeout=10.0,
        )

    def _mark(self, ready: bool, error: BaseException | None = None) -> None:
        if ready and not self.ready:
            if self._connected_before:
                self._reconnects += 1
            self._connected_before = True
            _log.info("pubsub subscribed", node=self.node, topics=len(self._subscribed),
                      reconnects=self._reconnects)
        elif not ready and (self.ready or (not self._connected_before and not self._lost_logged)):
            self._lost_logged = True
            _log.warning("pubsub connection lost; reconnecting with backoff",
                         node=self.node, error=repr(error))
        self.ready = ready
        self._state.unpark_all()

    async def _reconcile(self, pubsub: _CoredisPubSub[bytes]) -> bool:
        """Bring the Redis subscriptions in line with the local topics; False if they were."""
        wanted = self._topics.keys()
        add = [topic for topic in wanted if topic not in self._subscribed]
        remove = [topic for topic in self._subscribed if topic not in wanted]
        for batch in _batches(add):
            await pubsub.subscribe(*(self.channel(topic) for topic in batch))
            self._subscribed.update(batch)
        for batch in _batches(remove):
            await pubsub.unsubscribe(*(self.channel(topic) for topic in batch))
            self._subscribed.difference_update(batch)
        self._state.unpark_all()
        return bool(add or remove)

    async def _keep_reconciled(self, pubsub: _CoredisPubSub[bytes]) -> None:
        while True:
            wake = self._wake = trio.Event()
            if not await self._reconcile(pubsub):
                await wake.wait()

    async def _read(self, pubsub: _CoredisPubSub[bytes]) -> None:
        while True:
            message = await pubsub.get_message()
            if message is not None and message["type"] == "message":
                self._on_frame(message["channel"], message["data"])

    def _on_frame(self, channel: object, data: object) -> None:
        """One frame off Redis: decode once, suppress this node's echo, fan out."""
        if not isinstance(channel, bytes) or not channel.startswith(self._prefix):
            return
        try:
            if not isinstance(data, bytes):
                raise CodecError(f"a frame is bytes, got {type(data).__name__}")
            frame = decode_value(data)
            if (type(frame) is not list or len(frame) < 4 or frame[0] != FRAME_VERSION
                    or type(frame[1]) is not str or type(frame[2]) is not int):
                raise CodecError(
                    f"a pub/sub frame is [{FRAME_VERSION}, node: str, seq: int, payload], "
                    f"got {frame!r:.80}"
                )
        except CodecError as exc:
            self._bad_frames += 1
            _log.warning("pubsub frame rejected", channel=channel[:200], error=str(exc))
            return
        if frame[1] == self.node:
            return  # our own publish, already delivered in process
        self._received += 1
        self._fan_out(channel[len(self._prefix):].decode("utf-8", "replace"), frame[3])


def _batches(topics: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(topics), SUBSCRIBE_BATCH):
        yield topics[start:start + SUBSCRIBE_BATCH]
