"""Messages and actors shared by the kernel tests (module level, so they register once)."""

from __future__ import annotations

from typing import Any, ClassVar

import trio

from tektree import Actor, handler, message


@message("test.add")
class Add:
    amount: int


@message("test.get")
class Get:
    pass


@message("test.boom")
class Boom:
    text: str = "boom"


@message("test.slow")
class Slow:
    """Handled by an async handler that waits until the test opens ``Gate.event``."""

    label: str = ""


@message("test.tick")
class Tick:
    pass


@message("test.unhandled")
class NotHandled:
    pass


class Gate:
    """A test-controlled gate for ``Slow`` (reset per test by the fixtures that use it)."""

    event = trio.Event()
    entered = trio.Event()

    @classmethod
    def reset(cls) -> None:
        cls.event = trio.Event()
        cls.entered = trio.Event()


class Saved:
    """A stand-in for a real store in kernel tests: a plain dict, written by ``on_passivate``."""

    states: ClassVar[dict[str, int]] = {}
    log: ClassVar[list[str]] = []


class Counter(Actor):
    """Keeps a count; loads it from ``Saved.states`` and saves it there when passivated."""

    count: int

    async def on_activate(self) -> None:
        self.count = Saved.states.get(self.ctx.id.key, 0)
        Saved.log.append(f"activate {self.ctx.id.key}")

    async def on_passivate(self) -> None:
        Saved.states[self.ctx.id.key] = self.count
        Saved.log.append(f"passivate {self.ctx.id.key}")

    async def on_stop(self) -> None:
        Saved.log.append(f"stop {self.ctx.id.key}")

    @handler
    def add(self, msg: Add) -> int:
        self.count += msg.amount
        return self.count

    @handler
    async def get(self, msg: Get) -> int:
        return self.count

    @handler
    def boom(self, msg: Boom) -> None:
        raise ValueError(msg.text)

    @handler
    async def slow(self, msg: Slow) -> str:
        Gate.entered.set()
        await Gate.event.wait()
        return f"done {msg.label}"

    @handler
    def tick(self, msg: Tick) -> None:
        self.count += 1
        Saved.log.append(f"tick {self.ctx.id.key}")


def reset() -> None:
    Saved.states.clear()
    Saved.log.clear()
    Gate.reset()


def counter_kinds(**extra: type[Actor]) -> dict[str, type[Actor]]:
    return {"counter": Counter, **extra}


__all__ = ["Add", "Any", "Boom", "Counter", "Gate", "Get", "NotHandled", "Saved", "Slow", "Tick"]
