"""A node: one trio process running an actor system under the supervision tree of its config."""

from __future__ import annotations

import importlib
import signal
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import structlog
import trio
from prometheus_client import CollectorRegistry

from tektree._actor import Actor
from tektree._errors import ConfigError, SupervisorFailed
from tektree._gc import settle_collector
from tektree._gil import switch_interval
from tektree._supervisor import Child, Supervisor, TaskChild
from tektree._system import ActorSystem
from tektree._telemetry import RuntimeCollector, node_name
from tektree.config import ActorPoolSpec, Config, ServiceSpec, SupervisorSpec

if TYPE_CHECKING:
    from tektree.persistence import DocumentStore

_log = structlog.get_logger("tektree.node")

#: A service of the supervision tree: ``await service(node, spec, task_status=...)``; it calls
#: ``task_status.started(...)`` once it serves, then runs until cancelled.
Service = Callable[..., Awaitable[None]]


async def _timers_service(
    node: Node, spec: ServiceSpec, *, task_status: trio.TaskStatus[Any]
) -> None:
    await node.system.timers.run(task_status=task_status)


async def _store_service(
    node: Node, spec: ServiceSpec, *, task_status: trio.TaskStatus[Any]
) -> None:
    # Imported here: the kernel does not load the persistence layer unless a node runs a store.
    from tektree.persistence import store_service

    await store_service(node, spec, task_status=task_status)


async def _cluster_service(
    node: Node, spec: ServiceSpec, *, task_status: trio.TaskStatus[Any]
) -> None:
    # Imported here: an embedded node never loads the cluster code (nor coredis).
    from tektree.cluster._service import cluster_service

    await cluster_service(node, spec, task_status=task_status)


async def _reminders_service(
    node: Node, spec: ServiceSpec, *, task_status: trio.TaskStatus[Any]
) -> None:
    from tektree.reminders import reminders_service

    await reminders_service(node, spec, task_status=task_status)


async def _jobs_service(
    node: Node, spec: ServiceSpec, *, task_status: trio.TaskStatus[Any]
) -> None:
    from tektree.jobs import jobs_service

    await jobs_service(node, spec, task_status=task_status)


#: Services every node knows by name; anything else in ``service = "..."`` is an import path.
BUILTIN_SERVICES: dict[str, Service] = {
    "timers": _timers_service,
    "store": _store_service,
    "cluster": _cluster_service,
    "reminders": _reminders_service,
    "jobs": _jobs_service,
}


class NodeFailed(Exception):
    """The root supervisor failed; the node stopped. ``cause`` is the root's failure."""

    def __init__(self, node: str, cause: BaseException) -> None:
        super().__init__(f"node {node} stopped: {cause}")
        self.node = node
        self.cause = cause


@attrs.frozen
class _ServiceChild:
    name: str
    restart: str
    shutdown_seconds: float
    node: Node
    spec: ServiceSpec
    fn: Service

    async def run(self, *, task_status: trio.TaskStatus[Any]) -> None:
        await self.fn(self.node, self.spec, task_status=task_status)


class _RootStatus:
    """The root's ``task_status``: forwards ``started`` as True and remembers it did."""

    def __init__(self, outer: trio.TaskStatus[bool]) -> None:
        self._outer = outer
        self.reported = False

    def started(self, value: Any = None) -> None:
        self.reported = True
        self._outer.started(True)


def _import(path: str, where: str) -> Any:
    module_name, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(where, f"cannot import {path!r}: {exc}") from exc
    return obj


class Node:
    """Builds the actor system and the supervision tree from a :class:`Config` and runs them.

    ``actor_classes`` and ``services`` map kinds and service names to code directly (tests, or
    programs that do not want import paths); anything not given there is imported from the
    path in the config.
    """

    def __init__(
        self,
        config: Config,
        *,
        actor_classes: Mapping[str, type[Actor]] | None = None,
        services: Mapping[str, Service] | None = None,
    ) -> None:
        self.config = config
        self.name = config.node.resolved_name()
        self.system = ActorSystem(
            node_name=self.name,
            check_serialization=config.node.check_serialization,
            ask_timeout_seconds=config.node.ask_timeout_seconds,
            stop_timeout_seconds=config.node.drain_timeout_seconds,
        )
        self.metrics = CollectorRegistry(auto_describe=True)
        self.metrics.register(RuntimeCollector(self.system))
        self.stopping = trio.Event()
        self.bound: dict[str, list[str]] = {}
        self.readiness: dict[str, Callable[[], Awaitable[bool]]] = {}
        #: The node's document store while the ``store`` service runs, else None.
        self.store: DocumentStore | None = None
        self.failure: BaseException | None = None
        self._actor_classes = dict(actor_classes or {})
        self._services = {**BUILTIN_SERVICES, **(services or {})}
        self._stop_requested = trio.Event()
        self._scope: trio.CancelScope | None = None
        self.forced = False
        #: Cluster roles of this node (``tektree node --role``), used by placement.
        self.roles: tuple[str, ...] = ()
        self.root = self._build(config.supervisor, "supervisor")

    def __repr__(self) -> str:
        return f"<Node {self.name}>"

    # -- the tree ------------------------------------------------------------------------------
    def _build(self, spec: SupervisorSpec, path: str) -> Supervisor:
        children: list[Child] = []
        for index, child in enumerate(spec.children):
            where = f"{path}.children[{index}]"
            if isinstance(child, SupervisorSpec):
                children.append(self._build(child, where))
            elif isinstance(child, ActorPoolSpec):
                cls = self._actor_classes.get(child.kind) or _import(child.actor, f"{where}.actor")
                if not (isinstance(cls, type) and issubclass(cls, Actor)):
                    raise ConfigError(f"{where}.actor", f"{child.actor!r} is not an Actor class")
                try:
                    pool = self.system.add_pool(child, cls)
                except TypeError as exc:
                    raise ConfigError(f"{where}.actor", str(exc)) from exc
                children.append(TaskChild(name=f"actors:{child.kind}", fn=pool.run))
            else:
                assert isinstance(child, ServiceSpec)
                fn = self._services.get(child.service)
                if fn is None:
                    if ":" not in child.service:
                        raise ConfigError(
                            f"{where}.service",
                            f"no builtin service {child.service!r}; builtins: "
                            f"{', '.join(sorted(self._services))}, or use 'package.module:attr'",
                        )
                    fn = _import(child.service, f"{where}.service")
                children.append(_ServiceChild(
                    name=child.name, restart=child.restart,
                    shutdown_seconds=child.shutdown_seconds, node=self, spec=child, fn=fn,
                ))
        return Supervisor(
            spec.name,
            children,
            strategy=spec.strategy,
            max_restarts=spec.max_restarts,
            period_seconds=spec.period_seconds,
            backoff_initial_seconds=spec.backoff_initial_seconds,
            backoff_max_seconds=spec.backoff_max_seconds,
            restart=spec.restart,
            restart_counts=self.system.supervisor_restarts,
        )

    # -- lifecycle -----------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Begin a graceful stop (what SIGINT and SIGTERM do)."""
        self._stop_requested.set()

    async def serve(
        self,
        *,
        task_status: trio.TaskStatus[Node] = trio.TASK_STATUS_IGNORED,
        handle_signals: bool = False,
    ) -> None:
        """Run until :meth:`request_stop` (or a signal), then drain, passivate and return.

        Raises :class:`NodeFailed` when the root supervisor fails.
        """
        node_name.set(self.name)  # every task of this node inherits it: its log lines say so
        with switch_interval(self.config.node.switch_interval_ms):  # see tektree._gil
            await self._serve(handle_signals, task_status)
        if self.failure is not None:
            _log.critical(f"node {self.name} stopping: {self.failure}", node=self.name)
            raise NodeFailed(self.name, self.failure)
        if self.forced:
            _log.warning("node stopped before it could drain (forced)", node=self.name)
        else:
            _log.info("node stopped", node=self.name)

    async def _serve(self, handle_signals: bool, task_status: trio.TaskStatus[Node]) -> None:
        async with trio.open_nursery() as nursery:
            self._scope = nursery.cancel_scope
            if handle_signals:
                # Before the tree starts: a signal during a slow start still stops gracefully.
                await nursery.start(self._watch_signals, nursery.cancel_scope)
            _log.info("config loaded", node=self.name, source=self.config.source,
                      data_dir=str(self.config.node.resolved_data_dir()),
                      signals=handle_signals)
            started = await nursery.start(self._run_root)
            if not started:
                nursery.cancel_scope.cancel()
            else:
                settle_collector(self.config.node.gc_young_threshold)  # see tektree._gc
                _log.info("node started", node=self.name, kinds=sorted(self.system.pools),
                          bound=self.bound)
                task_status.started(self)
                await self._stop_requested.wait()
                if self.failure is None:
                    await self._graceful_stop()
                nursery.cancel_scope.cancel()

    def force_stop(self) -> None:
        """Stop now, without draining (a second SIGINT/SIGTERM)."""
        self.forced = True
        self._stop_requested.set()
        if self._scope is not None:
            self._scope.cancel()

    async def _run_root(self, *, task_status: trio.TaskStatus[bool]) -> None:
        """Run the root supervisor; report True once it started, False if it failed first."""
        status = _RootStatus(task_status)
        try:
            await self.root.run(task_status=status)
        except SupervisorFailed as exc:
            self.failure = exc
        finally:
            self._stop_requested.set()
            if not status.reported:
                task_status.started(False)

    async def _graceful_stop(self) -> None:
        timeout = self.config.node.drain_timeout_seconds
        system = self.system
        _log.info("node stopping: draining mailboxes", node=self.name, timeout_seconds=timeout)
        self.root.begin_shutdown()  # children that end now are not restarted
        system.stop_accepting()
        self.stopping.set()
        with trio.move_on_after(timeout) as drain:
            await system.wait_quiescent()
        if drain.cancelled_caught:
            queued = sum(p.queued for p in system.pools.values())
            _log.error("drain deadline passed", node=self.name, queued=queued)
        active = sum(len(p.cells) for p in system.pools.values())
        with trio.move_on_after(timeout) as passivating:
            await system.passivate_all()
        if passivating.cancelled_caught:
            left = sum(len(p.cells) for p in system.pools.values())
            _log.error("passivation deadline passed", node=self.name, left=left)
        else:
            _log.info("activations passivated", node=self.name, passivated=active)

    async def _watch_signals(
        self, scope: trio.CancelScope, *, task_status: trio.TaskStatus[None]
    ) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for signum in signals:
                if not self._stop_requested.is_set():
                    _log.info("signal received; stopping gracefully", node=self.name,
                              signal=signal.Signals(signum).name)
                    self.request_stop()
                else:
                    _log.warning("second signal; stopping now", node=self.name)
                    self.force_stop()
                    return

    async def is_ready(self) -> dict[str, bool]:
        """Run every readiness check (the store, Redis, membership...) once."""
        results = {"accepting": self.system.accepting}
        for name, check in self.readiness.items():
            try:
                results[name] = bool(await check())
            except Exception:
                results[name] = False
        return results
