"""The game loop's wiring: domain events from the store's outbox to the actors they concern.

```python
relay = OutboxRelay(node.store, event_router(node.system))     # or the service below
```

:func:`route_event` reads who an event credits with the same rule the profile applies
(:func:`actors.profile.credits`): ``user.registered`` → the new user (welcome bonus),
``knowledge.question.posted`` and ``knowledge.answer.submitted`` → the author,
``knowledge.answer.accepted`` → the answerer and the asker, a new up-vote
(``knowledge.content.voted``, value 1) → the content's author, and so on. Events that credit
nobody (the gamification events the profiles emit themselves, payments...) are skipped.
``user.registered`` also starts the user's Free subscription (``SubscriptionActor``,
:class:`~actors.subscriptions.EnsureSubscription`) when this node runs the ``subscription`` pool.

Delivery is at-least-once end to end: ``route_event`` *asks* each profile, so it returns only
after the profile has journaled the event (or recognised it), and the relay marks an event
published only after ``route_event`` returned. A failure (a timeout, a store error in the
profile) raises, and the relay retries the same event with backoff; a profile that already
applied it answers ``duplicate``. A malformed event is logged and skipped, never retried (it
would block every event behind it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import structlog
import trio

from actors.profile import USER_KIND, ApplyEvent, InvalidEvent, credits
from actors.subscriptions import SUBSCRIPTION_KIND, EnsureSubscription
from tektree import ActorSystem
from tektree.persistence import OutboxRelay, StoreNotRunning

if TYPE_CHECKING:
    from tektree import Node
    from tektree.config import ServiceSpec

__all__ = ["event_key", "event_router", "gamification_relay_service", "route_event"]

_log = structlog.get_logger("actors.wiring")
_OPTIONS: Final = frozenset({"batch_size", "poll_interval_seconds", "ask_timeout_seconds",
                             "concurrency"})


async def route_event(
    system: ActorSystem, envelope: Mapping[str, Any], *, timeout: float | None = None
) -> list[dict[str, Any]]:
    """Deliver one domain event envelope to every profile it credits; their replies, in order.

    Raises what the asks raise (``AskTimeout``, ``ActorFailed``): the caller retries.
    """
    event_id, event_type = envelope.get("event_id"), envelope.get("event_type")
    payload = envelope.get("payload")
    try:
        if not isinstance(event_id, str) or not event_id:
            raise InvalidEvent("event_id", f"must be a non-empty string, got {event_id!r:.60}")
        if not isinstance(event_type, str) or not isinstance(payload, Mapping):
            raise InvalidEvent("event_type", "an envelope needs event_type and a payload object")
        targets = credits(event_type, event_id, payload)
    except InvalidEvent as exc:
        _log.warning("malformed domain event skipped", event_id=event_id, error=str(exc))
        await trio.lowlevel.checkpoint()
        return []
    replies = []
    message = ApplyEvent(envelope=dict(envelope))
    for credit in targets:
        reply = await system.ref(USER_KIND, credit.user_id).ask(message, timeout=timeout)
        replies.append(reply)
    if event_type == "user.registered" and SUBSCRIPTION_KIND in system.pools:
        user_id = payload.get("user_id")
        if isinstance(user_id, str) and user_id:
            replies.append(await system.ref(SUBSCRIPTION_KIND, user_id).ask(
                EnsureSubscription(cause_id=event_id), timeout=timeout))
            return replies
    if not targets:
        await trio.lowlevel.checkpoint()
    return replies


def event_router(
    system: ActorSystem, *, timeout: float | None = None
) -> Callable[[dict[str, Any]], Awaitable[None]]:
    """``route_event`` bound to ``system``, shaped as ``OutboxRelay``'s ``publish`` callback."""

    async def publish(envelope: dict[str, Any]) -> None:
        await route_event(system, envelope, timeout=timeout)

    return publish


def event_key(envelope: Mapping[str, Any]) -> str:
    """The relay's ordering key of an event: the first user it credits (so one user's events
    reach their profile in order while other users' go at once), else its own id (an event
    that credits nobody needs no order)."""
    try:
        targets = credits(str(envelope.get("event_type")), str(envelope.get("event_id")),
                          envelope.get("payload") or {})
    except (InvalidEvent, TypeError, AttributeError):
        targets = []
    return "user:" + targets[0].user_id if targets else "event:" + str(envelope.get("event_id"))


def _number(options: Mapping[str, Any], name: str, default: float) -> float:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"gamification relay option {name} must be a number > 0, "
                         f"got {value!r}")
    return float(value)


async def gamification_relay_service(
    node: Node, spec: ServiceSpec, *, task_status: trio.TaskStatus[Any]
) -> None:
    """A node service relaying the store's outbox into the actors (``route_event``).

    ```toml
    [[supervisor.children]]
    type = "service"
    name = "gamification"
    service = "actors.wiring:gamification_relay_service"   # after the store service
    options = { poll_interval_seconds = 1.0, batch_size = 500, ask_timeout_seconds = 5.0,
                concurrency = 64 }
    ```

    ``concurrency`` users' events are delivered at once (each user's in order, see
    :func:`event_key`); 1 delivers one event at a time.

    Run it on one node of a cluster: relays on several nodes would each deliver every event
    (harmless, the profiles deduplicate, but twice the work).
    """
    options = spec.options
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise ValueError(f"gamification relay option {unknown[0]!r} is unknown; known: "
                         f"{sorted(_OPTIONS)}")
    store = node.store
    if store is None:
        raise StoreNotRunning("service " + spec.name)
    relay = OutboxRelay(
        store,
        event_router(node.system, timeout=_number(options, "ask_timeout_seconds", 5.0)),
        batch_size=int(_number(options, "batch_size", 500)),
        poll_interval_seconds=_number(options, "poll_interval_seconds", 1.0),
        key=event_key,
        concurrency=int(_number(options, "concurrency", 64)),
    )
    await relay.run(task_status=task_status)
