"""Supervisors: children started in order, watched, restarted by strategy, within an intensity.

Modelled on OTP's ``supervisor``: a child spec says how to start a child and when to restart it
(``permanent``: always; ``transient``: after a failure only; ``temporary``: never); the
supervisor's flags say what a failure restarts (``one_for_one``: the child; ``one_for_all``:
every child; ``rest_for_one``: the child and those started after it) and how often
(``max_restarts`` within ``period_seconds``, with an exponential backoff before each restart).
Past that intensity the supervisor stops its children, last started first, and fails with
:class:`SupervisorFailed`; its parent then applies its own strategy.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import attrs
import structlog
import trio

from tektree._errors import SupervisorFailed
from tektree._pool import backoff_delay

_log = structlog.get_logger("tektree.supervisor")


class Child(Protocol):
    """What a supervisor supervises: a named task started with ``nursery.start``."""

    @property
    def name(self) -> str: ...

    @property
    def restart(self) -> str: ...

    @property
    def shutdown_seconds(self) -> float: ...

    async def run(self, *, task_status: trio.TaskStatus[Any]) -> None: ...


@attrs.define(kw_only=True)
class TaskChild:
    """A child made of an async function ``fn(task_status=...)``."""

    name: str
    fn: Callable[..., Awaitable[None]]
    restart: str = "permanent"
    shutdown_seconds: float = 5.0

    async def run(self, *, task_status: trio.TaskStatus[Any]) -> None:
        await self.fn(task_status=task_status)


class _StartStatus:
    """Wraps a child's ``task_status``: learns whether it started (and why not), and shields
    the child from outside cancellation once it runs in its supervisor's nursery."""

    __slots__ = ("_nursery", "_outer", "error", "scope", "started_ok")

    def __init__(self, outer: trio.TaskStatus[_StartStatus], nursery: trio.Nursery) -> None:
        self._outer = outer
        self._nursery = nursery
        self.started_ok = False
        self.error: BaseException | None = None
        self.scope: trio.CancelScope | None = None

    def started(self, value: Any = None) -> None:
        self.started_ok = True
        self._outer.started(self)
        # trio leaves the child where it was when the start() was cancelled meanwhile; only a
        # child that really moved into the supervisor's nursery is shielded, so that the
        # supervisor alone stops it (in order); an abandoned start still gets cancelled.
        if self.scope is not None and trio.lowlevel.current_task().parent_nursery is self._nursery:
            self.scope.shield = True


class Supervisor:
    """Runs ``children`` under ``strategy`` with restart intensity and backoff."""

    def __init__(
        self,
        name: str,
        children: Sequence[Child],
        *,
        strategy: str = "one_for_one",
        max_restarts: int = 3,
        period_seconds: float = 5.0,
        backoff_initial_seconds: float = 0.05,
        backoff_max_seconds: float = 5.0,
        restart: str = "permanent",
        restart_counts: dict[str, int] | None = None,
    ) -> None:
        if strategy not in _STRATEGIES:
            raise ValueError(
                f"supervisor {name!r}: strategy {strategy!r} is not one of {sorted(_STRATEGIES)}"
            )
        names = [child.name for child in children]
        if len(set(names)) != len(names):
            raise ValueError(f"supervisor {name!r}: child names must be unique, got {names}")
        self.name = name
        self.children = list(children)
        self.strategy = strategy
        self.max_restarts = max_restarts
        self.period_seconds = period_seconds
        self.backoff_initial_seconds = backoff_initial_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.restart = restart
        self.shutdown_seconds = sum(c.shutdown_seconds for c in self.children) + 1.0
        self._counts = restart_counts if restart_counts is not None else {}
        n = len(self.children)
        self._scopes: list[trio.CancelScope | None] = [None] * n
        self._done: list[trio.Event | None] = [None] * n
        self._gens = [0] * n
        self._running = [False] * n
        self._window: deque[float] = deque()
        self._shutting_down = False
        self._nursery: trio.Nursery | None = None
        self._exits: trio.MemorySendChannel[tuple[int, int, BaseException | None]] | None = None

    def __repr__(self) -> str:
        names = [c.name for c in self.children]
        return f"<Supervisor {self.name} {self.strategy} children={names}>"

    @property
    def running_children(self) -> list[str]:
        return [c.name for c, up in zip(self.children, self._running, strict=True) if up]

    def begin_shutdown(self) -> None:
        """The node is stopping: from now on a child that ends is not restarted (recursive)."""
        self._shutting_down = True
        for child in self.children:
            if isinstance(child, Supervisor):
                child.begin_shutdown()

    # -- the supervisor as a child of its parent ----------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        self._window.clear()
        send, exits = trio.open_memory_channel[tuple[int, int, BaseException | None]](math.inf)
        self._exits = send
        failure: SupervisorFailed | None = None
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                for index in range(len(self.children)):
                    if not await self._start_with_retry(index):
                        failure = self._failure
                        break
                else:
                    task_status.started()
                    failure = await self._watch(exits)
            finally:
                with trio.CancelScope(shield=True):
                    await self._stop_range(range(len(self.children)))
                nursery.cancel_scope.cancel()
        self._nursery = None
        if failure is not None:
            _log.error("supervisor failed", supervisor=self.name, error=str(failure))
            raise failure

    async def _watch(
        self, exits: trio.MemoryReceiveChannel[tuple[int, int, BaseException | None]]
    ) -> SupervisorFailed | None:
        async for index, gen, error in exits:
            if gen != self._gens[index]:
                continue  # a stopped generation reporting late
            self._running[index] = False
            child = self.children[index]
            if self._shutting_down:
                _log.info("child ended during shutdown; not restarted", supervisor=self.name,
                          child=child.name, error=repr(error) if error else None)
                continue
            if not _should_restart(child.restart, error):
                _log.info("child ended", supervisor=self.name, child=child.name,
                          restart=child.restart, error=repr(error) if error else None)
                continue
            _log.error("child failed" if error else "child exited", supervisor=self.name,
                       child=child.name, error=repr(error) if error else None)
            if not self._count_restart(error):
                return self._failure
            await self._backoff()
            if not await _STRATEGIES[self.strategy](self, index):
                return self._failure
        return None  # pragma: no cover - the channel is never closed

    # -- restart bookkeeping ------------------------------------------------------------------
    _failure: SupervisorFailed | None = None

    def _count_restart(self, cause: BaseException | None) -> bool:
        now = trio.current_time()
        window = self._window
        window.append(now)
        while window and window[0] < now - self.period_seconds:
            window.popleft()
        self._counts[self.name] = self._counts.get(self.name, 0) + 1
        if len(window) > self.max_restarts:
            self._failure = SupervisorFailed(
                self.name, self.max_restarts, self.period_seconds, cause
            )
            return False
        return True

    async def _backoff(self) -> None:
        delay = backoff_delay(
            len(self._window), self.backoff_initial_seconds, self.backoff_max_seconds
        )
        if delay > 0:
            await trio.sleep(delay)

    # -- starting and stopping children --------------------------------------------------------
    async def _start_once(self, index: int) -> BaseException | None:
        assert self._nursery is not None
        self._gens[index] += 1
        status: _StartStatus = await self._nursery.start(self._runner, index, self._gens[index])
        if status.error is None:
            self._running[index] = True
        return status.error

    async def _start_with_retry(self, index: int) -> bool:
        while True:
            error = await self._start_once(index)
            if error is None:
                return True
            child = self.children[index]
            _log.error("child failed to start", supervisor=self.name, child=child.name,
                       error=repr(error))
            if not self._count_restart(error):
                return False
            await self._backoff()

    async def _runner(
        self, index: int, gen: int, *, task_status: trio.TaskStatus[_StartStatus]
    ) -> None:
        child = self.children[index]
        assert self._nursery is not None
        status = _StartStatus(task_status, self._nursery)
        done = self._done[index] = trio.Event()
        error: BaseException | None = None
        try:
            # Shielded once started (see _StartStatus): only this supervisor stops its
            # children, one at a time, last started first, even when it is cancelled itself.
            with trio.CancelScope() as scope:
                status.scope = scope
                self._scopes[index] = scope
                try:
                    await child.run(task_status=status)
                except Exception as exc:
                    error = _unwrap(exc)
            if not status.started_ok:
                status.error = error or RuntimeError(
                    f"child {child.name!r} returned before reporting it had started"
                )
                task_status.started(status)
                return
            if scope.cancelled_caught and self._scopes[index] is None:
                return  # stopped on purpose
            if self._exits is not None and gen == self._gens[index]:
                self._exits.send_nowait((index, gen, error))
        finally:
            done.set()

    async def _stop(self, index: int) -> None:
        scope = self._scopes[index]
        done = self._done[index]
        self._scopes[index] = None
        self._running[index] = False
        self._gens[index] += 1  # any late report of this generation is ignored
        if scope is None or done is None:
            return
        scope.cancel()
        with trio.move_on_after(self.children[index].shutdown_seconds) as waited:
            await done.wait()
        if waited.cancelled_caught:
            _log.error("child did not stop in time", supervisor=self.name,
                       child=self.children[index].name,
                       shutdown_seconds=self.children[index].shutdown_seconds)

    async def _stop_range(self, indices: range) -> None:
        for index in reversed(indices):
            await self._stop(index)

    async def _restart_range(self, indices: range) -> bool:
        for index in indices:
            if self.children[index].restart == "temporary" and not self._running[index]:
                continue
            if not await self._start_with_retry(index):
                return False
        return True

    async def _one_for_one(self, index: int) -> bool:
        return await self._start_with_retry(index)

    async def _one_for_all(self, index: int) -> bool:
        await self._stop_range(range(len(self.children)))
        return await self._restart_range(range(len(self.children)))

    async def _rest_for_one(self, index: int) -> bool:
        await self._stop_range(range(index, len(self.children)))
        return await self._restart_range(range(index, len(self.children)))


def _unwrap(error: Exception) -> Exception:
    """The one exception inside nested single-member groups (what nurseries wrap), else the
    error itself: logs and ``SupervisorFailed`` then name the real failure."""
    while isinstance(error, ExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def _should_restart(restart: str, error: BaseException | None) -> bool:
    if restart == "permanent":
        return True
    if restart == "transient":
        return error is not None
    return False


_STRATEGIES: dict[str, Callable[[Supervisor, int], Awaitable[bool]]] = {
    "one_for_one": Supervisor._one_for_one,
    "one_for_all": Supervisor._one_for_all,
    "rest_for_one": Supervisor._rest_for_one,
}
