"""Support for the multi-process cluster tests: the ``Account`` actor the worker processes run,
worker processes read line by line, the client node, and ledgers of acknowledged commands.

Worker processes import this module by its path (``actor = "cluster_support:Account"``, with
``tests/cluster`` on ``PYTHONPATH``), so it imports nothing from pytest.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import attrs
import trio

from tektree import ActorRef, Node, TekTreeError, handler, message
from tektree.cluster import Member, Membership, TransportBackpressure, home
from tektree.persistence import EventSourcedActor
from tektree.persistence._open import StoreSettings, open_store
from tektree.testing import open_test_node, test_config

HERE = Path(__file__).resolve().parent
KIND = "acct"
ROLE = "worker"
#: The cluster service's options for every node (fast failure detection, short leases).
FAST = {"heartbeat_seconds": 0.2, "ttl_seconds": 0.8, "lease_ttl_seconds": 2.0,
        "lease_renew_seconds": 0.5}
START_SECONDS = 30.0


# --------------------------------------------------------------------------- the actor


@message("cluster_support.deposit")
class Deposit:
    """Add ``amount``; ``command_id`` is the client's id of the command, the same on a retry."""

    command_id: str
    amount: int


@message("cluster_support.balance")
class Balance:
    """Ask: ``[balance, applied]`` (applied: how many distinct commands were applied)."""


@message("cluster_support.where")
class WhereAreYou:
    """Ask: the name of the node this activation runs on."""


class Account(EventSourcedActor[dict[str, Any]]):
    """A counter, one journal event per command; a redelivered command id appends nothing."""

    def initial_state(self) -> dict[str, Any]:
        return {"balance": 0, "applied": 0}

    def apply(self, state: dict[str, Any], event: Mapping[str, Any]) -> dict[str, Any]:
        return {"balance": state["balance"] + event["amount"], "applied": state["applied"] + 1}

    @handler
    async def deposit(self, msg: Deposit) -> list[int]:
        await self.persist([{"type": "deposited", "amount": msg.amount}],
                           event_id=msg.command_id)
        return [self.state["balance"], self.state["applied"]]

    @handler
    def balance(self, msg: Balance) -> list[int]:
        return [self.state["balance"], self.state["applied"]]

    @handler
    def where(self, msg: WhereAreYou) -> str:
        return self.ctx.system.node_name


# --------------------------------------------------------------------------- configuration


def write_worker_config(directory: Path, redis_url: str, sqlite_file: Path) -> Path:
    """A worker node's TOML: store (the shared SQLite file), timers, cluster, the acct pool."""
    assert sqlite_file.is_absolute()
    options = ", ".join(f"{key} = {value}" for key, value in FAST.items())
    text = f"""\
[node]
drain_timeout_seconds = 5.0

[http]
enabled = false

[redis]
url = {json.dumps(redis_url)}

[store]
backend = "sqlite"
sqlite_file = {json.dumps(str(sqlite_file))}

[[supervisor.children]]
type = "service"
name = "store"
service = "store"

[[supervisor.children]]
type = "service"
name = "timers"
service = "timers"

[[supervisor.children]]
type = "service"
name = "cluster"
service = "cluster"
options = {{ {options} }}

[[supervisor.children]]
type = "actors"
kind = "{KIND}"
actor = "cluster_support:Account"
options = {{ role = "{ROLE}" }}
"""
    path = directory / "worker.toml"
    path.write_text(text)
    return path


@asynccontextmanager
async def open_client(redis_url: str) -> AsyncIterator[Node]:
    """This test process as a cluster node without the worker role: it never hosts ``acct``."""
    config = test_config(
        {KIND: Account},
        services=[{"type": "service", "name": "cluster", "service": "cluster",
                   "options": FAST}],
        node={"name": "client"},
        pool_options={"options": {"role": ROLE}},
        redis_url=redis_url,
    )
    async with open_test_node(config, actors={KIND: Account}) as node:
        yield node


def membership_of(node: Node) -> Membership:
    membership = node.system.extensions["cluster.membership"]
    assert isinstance(membership, Membership)
    return membership


def workers_in_view(node: Node) -> list[Member]:
    return [m for m in membership_of(node).view.members if ROLE in m.roles]


async def wait_for_workers(node: Node, names: Iterable[str], seconds: float = 15.0) -> None:
    """Until the node's membership view holds exactly the workers ``names``."""
    wanted = set(names)
    membership = membership_of(node)
    with trio.fail_after(seconds):
        while {m.name for m in workers_in_view(node)} != wanted:
            await membership.wait_for_change(membership.view.version)


def home_of(key: str, members: Iterable[Member]) -> str:
    """Where placement puts ``acct/<key>`` among ``members`` (those with the worker role)."""
    return home(f"{KIND}/{key}", members, role=ROLE).name


# --------------------------------------------------------------------------- worker processes


def tektree_command() -> list[str]:
    script = Path(sys.executable).with_name("tektree")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "tektree.cli"]


class WorkerProcess:
    """One ``tektree node`` process; a task reads its stderr as JSON log lines as they come."""

    def __init__(self, name: str, process: trio.Process) -> None:
        self.name = name
        self.process = process
        self.lines: list[str] = []
        self.entries: list[dict[str, Any]] = []
        self._changed = trio.Event()
        self.eof = False

    async def read_stderr(self) -> None:
        stream = self.process.stderr
        assert stream is not None
        buffer = b""
        try:
            while chunk := await stream.receive_some():
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                for raw in complete:
                    self._add(raw.decode(errors="replace"))
            if buffer:
                self._add(buffer.decode(errors="replace"))
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass
        finally:
            self.eof = True
            self._wake()

    def _add(self, line: str) -> None:
        self.lines.append(line)
        if line.startswith("{"):
            with suppress(ValueError):  # a line of JSON cut short by a kill
                self.entries.append(json.loads(line))
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def events(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.entries if e.get("event") == event]

    async def wait_for(
        self,
        event: str,
        seconds: float = START_SECONDS,
        where: Callable[[dict[str, Any]], bool] = lambda entry: True,
        count: int = 1,
    ) -> list[dict[str, Any]]:
        """The first ``count`` entries logged with ``event`` (and matching ``where``)."""
        with trio.fail_after(seconds):
            while True:
                found = [e for e in self.events(event) if where(e)]
                if len(found) >= count:
                    return found[:count]
                if self.eof:
                    raise AssertionError(
                        f"{self.name} exited before logging {event!r} x{count}; stderr tail:\n"
                        + self.stderr_tail()
                    )
                await self._changed.wait()

    def stderr_tail(self, lines: int = 40) -> str:
        return "\n".join(self.lines[-lines:])

    @property
    def alive(self) -> bool:
        return self.process.returncode is None and not self.eof

    def kill(self) -> None:
        """SIGKILL: no drain, no passivation, no leave."""
        if self.process.returncode is None:
            os.kill(self.process.pid, signal.SIGKILL)


class Workers:
    """The worker processes of one test, started in its nursery, all killed when it ends."""

    def __init__(self, nursery: trio.Nursery, config: Path, cwd: Path) -> None:
        self._nursery = nursery
        self.config = config
        self.cwd = cwd
        self.by_name: dict[str, WorkerProcess] = {}

    async def start(self, *names: str) -> list[WorkerProcess]:
        """Start the workers ``names`` together; return once each logged "node started"."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEKTREE_")}
        env["PYTHONPATH"] = str(HERE)
        started = []
        for name in names:
            process = await trio.lowlevel.open_process(
                [*tektree_command(), "node", "--config", str(self.config), "--name", name,
                 "--role", ROLE, "--data-dir", str(self.cwd / f"data-{name}")],
                cwd=self.cwd, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            worker = WorkerProcess(name, process)
            self.by_name[name] = worker
            self._nursery.start_soon(worker.read_stderr)
            started.append(worker)
        for worker in started:
            await worker.wait_for("cluster joined")
            await worker.wait_for("node started")
        return started

    def __getitem__(self, name: str) -> WorkerProcess:
        return self.by_name[name]

    def errors(self) -> list[str]:
        """Every error-level log line of every worker (crashed actors, failed children)."""
        return [
            f"{worker.name}: {entry['event']}: {entry.get('exception', '')[-300:]}"
            for worker in self.by_name.values()
            for entry in worker.entries
            if entry.get("level") in ("error", "critical")
        ]

    async def kill_all(self) -> None:
        for worker in self.by_name.values():
            worker.kill()
        with trio.move_on_after(10):
            for worker in self.by_name.values():
                await worker.process.wait()
        for worker in self.by_name.values():  # kept with the test's files, for a post-mortem
            (self.cwd / f"{worker.name}.log").write_text("\n".join(worker.lines) + "\n")


@asynccontextmanager
async def open_workers(tmp_path: Path, redis_url: str) -> AsyncIterator[Workers]:
    """Worker processes sharing ``tmp_path/shared.sqlite3``; killed on the way out.

    The shared store is created (with the kernel's indexes) before any worker starts: workers
    that create it concurrently hit the index-registry race pinned by
    ``test_a_store_opened_while_another_process_creates_the_indexes_still_dedupes``.
    """
    sqlite_file = tmp_path / "shared.sqlite3"
    async with open_store(StoreSettings(sqlite_path=sqlite_file)):
        pass
    config = write_worker_config(tmp_path, redis_url, sqlite_file)
    async with trio.open_nursery() as nursery:
        workers = Workers(nursery, config, tmp_path)
        try:
            yield workers
        finally:
            with trio.CancelScope(shield=True):
                await workers.kill_all()
            nursery.cancel_scope.cancel()


# --------------------------------------------------------------------------- the client side

#: What a client retries: timeouts, remote failures, stops, no eligible home yet, a full buffer.
RETRYABLE = (TekTreeError, LookupError, TransportBackpressure)


@attrs.define
class Ledger:
    """What the client had acknowledged, per actor: command ids and amounts."""

    acked: dict[str, dict[str, int]] = attrs.Factory(lambda: defaultdict(dict))
    failures: Counter[str] = attrs.Factory(Counter)
    attempts: int = 0

    def balance(self, key: str) -> int:
        return sum(self.acked[key].values())

    def count(self, key: str) -> int:
        return len(self.acked[key])

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.acked.values())


async def ask_until_answered(
    ref: ActorRef, msg: Any, ledger: Ledger, *, attempt_seconds: float = 2.0
) -> Any:
    """Ask, and ask again with the very same message after any failure, until answered.

    At-least-once from the client's side; unbounded here, so callers hold a deadline.
    """
    failures = 0
    while True:
        ledger.attempts += 1
        try:
            return await ref.ask(msg, timeout=attempt_seconds)
        except RETRYABLE as exc:
            ledger.failures[type(exc).__name__] += 1
            failures += 1
            # Pace the retries (a failed ask that failed fast must not spin), at most 0.2 s.
            await trio.sleep(min(0.2, 0.01 * 2**failures))


async def deposit(
    node: Node, key: str, command_id: str, amount: int, ledger: Ledger,
    *, attempt_seconds: float = 2.0,
) -> list[int]:
    reply = await ask_until_answered(
        node.system.ref(KIND, key), Deposit(command_id=command_id, amount=amount), ledger,
        attempt_seconds=attempt_seconds,
    )
    ledger.acked[key][command_id] = amount
    return list(reply)


async def run_load(
    node: Node,
    keys: list[str],
    ledger: Ledger,
    *,
    rounds: int,
    concurrency: int,
    tag: str,
    stop: trio.Event | None = None,
    progress: Callable[[int], None] | None = None,
    attempt_seconds: float = 2.0,
) -> None:
    """``rounds`` deposits to each of ``keys`` by ``concurrency`` tasks, each retried until
    acknowledged; ends early (between commands) once ``stop`` is set. Amounts vary per command
    so that a double application would show in the balance as well as in the count."""
    queue = [(r, key) for r in range(rounds) for key in keys]
    queue.reverse()
    done = 0

    async def lane() -> None:
        nonlocal done
        while queue and not (stop is not None and stop.is_set()):
            r, key = queue.pop()
            await deposit(node, key, f"{tag}:{key}:{r}", 1 + (r % 7), ledger,
                          attempt_seconds=attempt_seconds)
            done += 1
            if progress is not None:
                progress(done)

    async with trio.open_nursery() as nursery:
        for _ in range(min(concurrency, len(queue))):
            nursery.start_soon(lane)


async def gather(
    node: Node, keys: list[str], msg: Any, ledger: Ledger, *, concurrency: int = 100,
    attempt_seconds: float = 2.0,
) -> dict[str, Any]:
    """``msg`` asked of every actor of ``keys`` (retried until answered), by key."""
    results: dict[str, Any] = {}
    pending = list(keys)

    async def lane() -> None:
        while pending:
            key = pending.pop()
            results[key] = await ask_until_answered(
                node.system.ref(KIND, key), msg, ledger, attempt_seconds=attempt_seconds
            )

    async with trio.open_nursery() as nursery:
        for _ in range(min(concurrency, len(keys))):
            nursery.start_soon(lane)
    return results


def check_balances(balances: Mapping[str, Any], ledger: Ledger) -> list[str]:
    """Every actor's [balance, applied] against the ledger; the mismatches, described."""
    wrong = []
    for key, (balance, applied) in sorted(balances.items()):
        if (balance, applied) != (ledger.balance(key), ledger.count(key)):
            wrong.append(f"{key}: has balance {balance} from {applied} commands, "
                         f"acknowledged {ledger.balance(key)} from {ledger.count(key)}")
    return wrong


# --------------------------------------------------------------------------- the journal


@attrs.frozen
class JournalRow:
    seq: int
    event_id: str
    fencing_token: int | None
    amount: int


def read_journal(sqlite_file: Path) -> dict[str, list[JournalRow]]:
    """Every actor's journal, ordered by seq, straight from the shared SQLite file."""
    conn = sqlite3.connect(f"file:{sqlite_file}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute(
            "SELECT json_extract(doc, '$.actor_id'), json_extract(doc, '$.seq'), "
            "json_extract(doc, '$.event_id'), json_extract(doc, '$.fencing_token'), "
            "json_extract(doc, '$.data.amount') FROM c_journal"
        ).fetchall()
    finally:
        conn.close()
    journals: dict[str, list[JournalRow]] = defaultdict(list)
    for actor_id, seq, event_id, token, amount in rows:
        journals[actor_id].append(JournalRow(seq, event_id, token, amount))
    for events in journals.values():
        events.sort(key=lambda row: row.seq)
    return journals


def journal_violations(journals: Mapping[str, list[JournalRow]]) -> list[str]:
    """Gaps in seq, repeated event ids, fencing tokens going down as seq goes up."""
    problems = []
    for actor_id, events in sorted(journals.items()):
        seqs = [e.seq for e in events]
        if seqs != list(range(1, len(events) + 1)):
            problems.append(f"{actor_id}: seqs are not 1..{len(events)}: {seqs[:20]}")
        ids = Counter(e.event_id for e in events)
        if len(ids) != len(events):
            problems.append(f"{actor_id}: event ids applied twice: "
                            f"{[i for i, n in ids.items() if n > 1][:5]}")
        top = -math.inf
        for e in events:
            if e.fencing_token is None:
                problems.append(f"{actor_id}: seq {e.seq} was written without a fencing token")
                break
            if e.fencing_token < top:
                problems.append(f"{actor_id}: seq {e.seq} written with token {e.fencing_token}"
                                f" after a write with the newer token {top}")
                break
            top = e.fencing_token
    return problems
