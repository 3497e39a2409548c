"""The actor base class: one handler per message class, lifecycle hooks, a context.

```python
class Counter(Actor):
    async def on_activate(self) -> None:
        self.count = 0

    @handler
    def add(self, msg: Add) -> int:          # def: never suspends; the fast path
        self.count += msg.amount
        return self.count

    @handler
    async def save(self, msg: Save) -> None:  # async def: may await I/O
        await store.put(self.ctx.id.key, self.count)
```

A handler's return value is the reply to an ``ask``. Handlers run one at a time per activation.
A ``def`` handler never suspends, so an ``ask`` to an idle local activation runs it directly in
the asking task (the actor's turn held, failures still supervised); an ``async def`` handler
always runs in one of its pool's worker tasks.

A **batch handler** takes every message of its class that is queued in a row in the mailbox at
once (up to the pool's ``batch_size`` per turn) and returns one reply per message, in order, so
a write that costs one store commit can serve many messages:

```python
    @batch_handler(Deposit)
    async def deposit(self, msgs: list[Deposit]) -> list[int]:
        await self.persist_each([(m.id, {"amount": m.amount}) for m in msgs])
        return [self.balance] * len(msgs)
```

Its replies (or its failure, which fails every ask of the batch) are sent only after it
returns: an ask is answered once the whole batch is done.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

from tektree._errors import CodecError
from tektree._messages import message_spec

if TYPE_CHECKING:
    from tektree._context import ActorContext

F = TypeVar("F", bound=Callable[..., Any])

_HANDLER_MARK = "__tektree_handles__"
_BATCH_MARK = "__tektree_batch__"


def is_message_type(cls: type) -> bool:
    """Whether ``cls`` is a message class registered with ``@message``."""
    tag = getattr(cls, "__message_tag__", None)
    if not isinstance(tag, str):
        return False
    try:
        return message_spec(tag).cls is cls
    except CodecError:
        return False


class Handler:
    """A resolved handler: the function, whether it is ``async``, its message class, and
    whether it takes a list of messages (``batched``, see :func:`batch_handler`)."""

    __slots__ = ("batched", "fn", "is_async", "message_type", "name")

    def __init__(
        self, fn: Callable[..., Any], message_type: type, name: str, *, batched: bool = False
    ) -> None:
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        self.message_type = message_type
        self.name = name
        self.batched = batched

    def __repr__(self) -> str:
        kind = ("async " if self.is_async else "") + ("batch " if self.batched else "")
        return f"<{kind}handler {self.name} for {self.message_type.__qualname__}>"


@overload
def handler(message_type: type, /) -> Callable[[F], F]: ...
@overload
def handler(fn: F, /) -> F: ...
def handler(arg: Any, /) -> Any:
    """Mark a method as the handler of a message class.

    ``@handler`` reads the class from the annotation of the method's one parameter;
    ``@handler(SomeMessage)`` names it explicitly.
    """
    if isinstance(arg, type):
        message_type = arg

        def mark(fn: F) -> F:
            setattr(fn, _HANDLER_MARK, message_type)
            return fn

        return mark
    setattr(arg, _HANDLER_MARK, None)
    return arg


def batch_handler(message_type: type, /) -> Callable[[F], F]:
    """Mark an ``async def`` method as the batch handler of ``message_type``: it is called with
    a list of the messages queued in a row (at least one) and returns a list of as many
    replies, in the same order (see the module docstring)."""
    if not isinstance(message_type, type):
        raise TypeError(f"@batch_handler takes the message class, got {message_type!r}; write "
                        "@batch_handler(SomeMessage)")

    def mark(fn: F) -> F:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"batch handler {fn.__qualname__} must be an async def: it runs in "
                            "a worker task, never inline")
        setattr(fn, _HANDLER_MARK, message_type)
        setattr(fn, _BATCH_MARK, True)
        return fn

    return mark


def _resolve_message_type(cls: type, name: str, fn: Callable[..., Any]) -> type:
    declared = getattr(fn, _HANDLER_MARK)
    if declared is not None:
        return typing.cast(type, declared)
    params = [p for p in inspect.signature(fn).parameters.values()][1:]
    if len(params) != 1:
        raise TypeError(
            f"handler {cls.__qualname__}.{name} must take exactly one message parameter "
            f"after self, it takes {len(params)}"
        )
    try:
        hints = typing.get_type_hints(fn)
    except NameError as exc:
        raise TypeError(
            f"cannot resolve the message class of handler {cls.__qualname__}.{name}: {exc}; "
            "define the message class at module level or use @handler(MessageClass)"
        ) from exc
    annotation = hints.get(params[0].name)
    if not isinstance(annotation, type):
        raise TypeError(
            f"handler {cls.__qualname__}.{name} needs its parameter annotated with one "
            f"message class, got {annotation!r}; or use @handler(MessageClass)"
        )
    return annotation


class Actor:
    """Base class of every actor. Subclass it, add ``@handler`` methods, register the kind.

    The runtime constructs an activation as ``cls(ctx)``; load state in :meth:`on_activate`,
    save it in :meth:`on_passivate`. ``self.ctx`` gives the actor's id, system, timers and log.
    """

    __slots__ = ("ctx",)

    _handler_table: ClassVar[dict[type, Handler] | None] = None
    #: True when the subclass overrides the hook, so the runtime skips no-op awaits.
    _has_on_activate: ClassVar[bool] = False
    _has_on_passivate: ClassVar[bool] = False
    _has_on_stop: ClassVar[bool] = False

    def __init__(self, ctx: ActorContext) -> None:
        self.ctx = ctx

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._handler_table = None
        cls._has_on_activate = cls.on_activate is not Actor.on_activate
        cls._has_on_passivate = cls.on_passivate is not Actor.on_passivate
        cls._has_on_stop = cls.on_stop is not Actor.on_stop

    async def on_activate(self) -> None:
        """Called once per activation before its first message: load state here."""

    async def on_passivate(self) -> None:
        """Called when a healthy activation is deactivated (idle, node stop, migration)."""

    async def on_stop(self) -> None:
        """Called last for every activation that ends, after a crash too: release resources."""

    @classmethod
    def handlers(cls) -> dict[type, Handler]:
        """The dispatch table, message class → handler (built and checked on first use)."""
        table = cls.__dict__.get("_handler_table")
        if table is None:
            table = {}
            owner: dict[type, str] = {}
            for klass in reversed(cls.__mro__):
                for name, member in vars(klass).items():
                    if not callable(member) or not hasattr(member, _HANDLER_MARK):
                        continue
                    message_type = _resolve_message_type(cls, name, member)
                    if not is_message_type(message_type):
                        raise TypeError(
                            f"handler {cls.__qualname__}.{name} takes {message_type.__qualname__}, "
                            "which is not a registered message class; decorate it with "
                            "@message('tag')"
                        )
                    previous = owner.get(message_type)
                    if previous is not None and previous != name and klass is cls:
                        raise TypeError(
                            f"{cls.__qualname__} has two handlers for "
                            f"{message_type.__qualname__}: {previous} and {name}"
                        )
                    owner[message_type] = name
                    table[message_type] = Handler(
                        member, message_type, name, batched=getattr(member, _BATCH_MARK, False)
                    )
            cls._handler_table = table
        return table
