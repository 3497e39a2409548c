"""Real node processes for the reminder and job cluster tests: two ``tektree node`` processes
sharing one SQLite store and a private ``redis-server``, running the reminders and jobs
services with short leases, the ``pinged`` actors of ``reminder_support`` and the job types of
``job_support``. The test process reads and writes the shared store itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS / "cluster") not in sys.path:
    sys.path.insert(0, str(TESTS / "cluster"))

from cluster_support import WorkerProcess, Workers, tektree_command  # noqa: E402

from tektree.jobs import StoreJobBackend  # noqa: E402
from tektree.persistence import DocumentStore, StoreSettings, open_store  # noqa: E402
from tektree.reminders import Reminders  # noqa: E402

CLUSTER = {"heartbeat_seconds": 0.2, "ttl_seconds": 0.8, "lease_ttl_seconds": 2.0,
           "lease_renew_seconds": 0.5, "lease_restart_grace": False}
REMINDERS = {"poll_interval_seconds": 0.2, "lookahead_seconds": 0.5, "lease_seconds": 3.0,
             "fire_timeout_seconds": 1.0, "retry_initial_seconds": 0.2,
             "retry_max_seconds": 1.0, "stats_log_seconds": 0.3}
JOBS = {"registries": ["job_support:JOBS"], "poll_interval_seconds": 0.2,
        "lease_seconds": 3.0, "reap_interval_seconds": 0.3,
        "types": {"test.flaky": {"backoff_initial_seconds": 0.2, "backoff_max_seconds": 1.0}}}
PATHS = [TESTS / "reminders", TESTS / "jobs", TESTS / "cluster"]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def write_config(directory: Path, redis_url: str, sqlite_file: Path) -> Path:
    def service(name: str, options: dict[str, Any]) -> str:
        return (f'[[supervisor.children]]\ntype = "service"\nname = "{name}"\n'
                f'service = "{name}"\noptions = {_toml(options)}\n')

    text = "\n".join([
        '[node]\ndrain_timeout_seconds = 3.0\n',
        '[http]\nenabled = false\n',
        f'[redis]\nurl = {json.dumps(redis_url)}\n',
        f'[store]\nbackend = "sqlite"\nsqlite_file = {json.dumps(str(sqlite_file))}\n',
        service("store", {}), service("timers", {}), service("cluster", CLUSTER),
        '[[supervisor.children]]\ntype = "actors"\nkind = "pinged"\n'
        'actor = "reminder_support:Pinged"\n',
        '[[supervisor.children]]\ntype = "actors"\nkind = "schedule"\n'
        'actor = "tektree.jobs:ScheduleActor"\n',
        service("reminders", REMINDERS), service("jobs", JOBS),
    ])
    path = directory / "durable.toml"
    path.write_text(text)
    return path


class Nodes(Workers):
    """The node processes of one test (started in its nursery, all killed when it ends), and
    the store they share."""

    def __init__(self, nursery: trio.Nursery, config: Path, cwd: Path, store: DocumentStore):
        super().__init__(nursery, config, cwd)
        self.store = store

    async def start(self, *names: str) -> list[WorkerProcess]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEKTREE_")}
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in PATHS)
        for name in names:
            process = await trio.lowlevel.open_process(
                [*tektree_command(), "node", "--config", str(self.config), "--name", name,
                 "--data-dir", str(self.cwd / f"data-{name}")],
                cwd=self.cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            worker = WorkerProcess(name, process)
            self.by_name[name] = worker
            self._nursery.start_soon(worker.read_stderr)
        for name in names:
            await self.by_name[name].wait_for("node started")
        return [self.by_name[name] for name in names]

    async def wait_split(self) -> None:
        """Until every node claims a share of the buckets (each sees all the others)."""
        for worker in self.by_name.values():
            await worker.wait_for("reminder buckets owned", seconds=20,
                                  where=lambda e: e["members"] == len(self.by_name))

    async def kill(self, name: str) -> None:
        worker = self.by_name[name]
        worker.kill()
        with trio.fail_after(10):
            await worker.process.wait()

    def statistics(self, name: str) -> dict[str, Any]:
        """The last "reminders statistics" line of a node ({} before the first)."""
        lines = self.by_name[name].events("reminders statistics")
        return lines[-1] if lines else {}

    def errors(self) -> list[str]:
        return [f"{w.name}: {e['event']}: {str(e.get('exception', ''))[-300:]}"
                for w in self.by_name.values() for e in w.entries
                if e.get("level") in ("error", "critical")
                and e.get("event") not in ("actor crashed", "job dead-lettered")]


@asynccontextmanager
async def open_nodes(tmp_path: Path, redis_url: str) -> AsyncIterator[Nodes]:
    """The shared store (indexes created first: see ``open_workers``), then the nodes."""
    sqlite_file = tmp_path / "shared.sqlite3"
    config = write_config(tmp_path, redis_url, sqlite_file)
    async with open_store(StoreSettings(sqlite_path=sqlite_file)) as store:
        await Reminders(store).ensure_indexes()
        await StoreJobBackend(store).setup()
        async with trio.open_nursery() as nursery:
            nodes = Nodes(nursery, config, tmp_path, store)
            try:
                yield nodes
            finally:
                with trio.CancelScope(shield=True):
                    await nodes.kill_all()
                nursery.cancel_scope.cancel()


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 20.0) -> None:
    """Until ``check()`` holds (state in another process: read it again every 50 ms)."""
    with trio.fail_after(seconds):
        while True:
            if await check():
                return
            await trio.sleep(0.05)
