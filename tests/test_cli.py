"""The ``tektree`` command in real subprocesses: start, serve, stop on signals, fail, refuse.

Every wait has a deadline; output is read as it comes, never slept for.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

REPO = Path(__file__).resolve().parent.parent
START_SECONDS = 20
STOP_SECONDS = 20


def _env(*pythonpath: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEKTREE_")}
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    return env


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tektree.cli", *args]


class NodeProcess:
    """A ``tektree`` subprocess whose stderr is read line by line as JSON log entries."""

    def __init__(self, process: trio.Process) -> None:
        assert process.stderr is not None
        self.process = process
        self.lines: list[str] = []
        self._stderr = process.stderr
        self._buffer = b""
        self._eof = False

    @property
    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines if line.startswith("{")]

    async def _read_line(self) -> str | None:
        while b"\n" not in self._buffer:
            if self._eof:
                return None
            chunk = await self._stderr.receive_some()
            if not chunk:
                self._eof = True
                if self._buffer:
                    self._buffer += b"\n"
                continue
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        text = line.decode()
        self.lines.append(text)
        return text

    async def wait_for(self, event: str, seconds: float = START_SECONDS) -> dict[str, Any]:
        """The first JSON entry whose ``event`` is ``event``, read within ``seconds``."""
        for entry in self.entries:
            if entry.get("event") == event:
                return entry
        with trio.fail_after(seconds):
            while (line := await self._read_line()) is not None:
                if line.startswith("{") and (entry := json.loads(line)).get("event") == event:
                    return entry
        raise AssertionError(f"exited before logging {event!r}; stderr:\n" + self.stderr)

    async def finish(self, seconds: float = STOP_SECONDS) -> int:
        """Read stderr to EOF and wait for the exit code, within ``seconds``."""
        with trio.fail_after(seconds):
            while await self._read_line() is not None:
                pass
            return await self.process.wait()

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)


@asynccontextmanager
async def tektree(
    *args: str, cwd: Path, pythonpath: tuple[Path, ...] = (), stdin: bool = False
) -> AsyncIterator[NodeProcess]:
    process = await trio.lowlevel.open_process(
        _command(*args), cwd=cwd, env=_env(*pythonpath),
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        yield NodeProcess(process)
    finally:
        if process.returncode is None:
            process.kill()
            with trio.move_on_after(STOP_SECONDS):
                await process.wait()
        await process.stderr.aclose()
        if process.stdin is not None:
            await process.stdin.aclose()


def _http_get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


async def http_get(url: str) -> tuple[int, bytes]:
    return await trio.to_thread.run_sync(_http_get, url)


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


# --------------------------------------------------------------------------- run / node


async def _serve_and_stop(node: NodeProcess, signum: int) -> None:
    listening = await node.wait_for("http listening")
    await node.wait_for("node started")
    (base,) = listening["binds"]
    status, body = await http_get(base + "/healthz")
    assert status == 200
    assert json.loads(body)["status"] == "ok"
    node.process.send_signal(signum)
    assert await node.finish() == 0, node.stderr
    events = [entry["event"] for entry in node.entries]
    assert "node stopped" in events
    assert "Traceback" not in node.stderr


async def test_run_serves_http_and_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    shutil.copy(REPO / "supervisor.toml", tmp_path / "supervisor.toml")  # found in the CWD
    data = tmp_path / "data"
    async with tektree("run", "--port", "0", "--data-dir", str(data), cwd=tmp_path) as node:
        loaded = await node.wait_for("config loaded")
        assert loaded["source"] == "supervisor.toml"
        assert loaded["data_dir"] == str(data)
        assert data.is_dir()
        await _serve_and_stop(node, signal.SIGTERM)


async def test_node_command_stops_gracefully_on_sigint(tmp_path: Path) -> None:
    config = shutil.copy(REPO / "supervisor.toml", tmp_path / "cluster.toml")
    async with tektree(
        "node", "--config", str(config), "--name", "n1", "--role", "gateway", "--role", "worker",
        "--port", "0", "--data-dir", str(tmp_path / "data"), cwd=tmp_path,
    ) as node:
        embedded = await node.wait_for("running embedded")
        assert embedded["roles"] == ["gateway", "worker"]
        assert "redis.url" in embedded["reason"]
        loaded = await node.wait_for("config loaded")
        assert loaded["node"] == "n1"
        await _serve_and_stop(node, signal.SIGINT)


SLOW_START = """\
    import os
    from typing import Any

    import structlog
    import trio


    async def serve(node: Any, spec: Any, *, task_status: Any) -> None:
        structlog.get_logger("slow").info("slow service starting")
        async with trio.lowlevel.FdStream(os.dup(0)) as stdin:
            await stdin.receive_some()  # the test says when startup may finish
        task_status.started()
        await trio.sleep_forever()
"""


async def test_sigterm_during_startup_stops_gracefully_once_started(tmp_path: Path) -> None:
    # Regression: the node used to watch signals only once its tree had started, so a SIGTERM
    # during a slow start killed the process; now the receiver is installed first.
    modules = tmp_path / "modules"
    modules.mkdir()
    write(modules / "slow_start.py", SLOW_START)
    config = write(tmp_path / "slow.toml", """\
        [http]
        enabled = false

        [[supervisor.children]]
        type = "service"
        name = "slow"
        service = "slow_start:serve"
        """)
    async with tektree("run", "--config", str(config), "--data-dir", str(tmp_path / "data"),
                       cwd=tmp_path, pythonpath=(modules,), stdin=True) as node:
        await node.wait_for("slow service starting")
        node.process.send_signal(signal.SIGTERM)
        await node.wait_for("signal received; stopping gracefully")
        assert node.process.stdin is not None
        await node.process.stdin.send_all(b"go\n")
        assert await node.finish() == 0, node.stderr
    events = [entry["event"] for entry in node.entries]
    assert events[-3:] == ["node stopping: draining mailboxes", "activations passivated",
                           "node stopped"]


async def test_node_command_requires_config_and_name(tmp_path: Path) -> None:
    result = await trio.run_process(
        _command("node", "--name", "n1"), cwd=tmp_path, env=_env(), check=False,
        capture_stdout=True, capture_stderr=True,
    )
    assert result.returncode == 2
    assert b"--config" in result.stderr


# --------------------------------------------------------------------------- lifecycle


LIFECYCLE_ACTORS = """\
    from pathlib import Path
    from typing import Any

    import structlog
    import trio

    from tektree import Actor, handler, message

    log = structlog.get_logger("lifecycle")


    @message("lifecycle.add")
    class Add:
        amount: int


    class Counter(Actor):
        async def on_activate(self) -> None:
            self.count = 0

        @handler
        def add(self, msg: Add) -> int:
            self.count += msg.amount
            return self.count

        async def on_passivate(self) -> None:
            path = trio.Path(self.ctx.options["state_dir"]) / f"{self.ctx.id.key}.state"
            await path.write_text(str(self.count))


    async def feeder(node: Any, spec: Any, *, task_status: Any) -> None:
        task_status.started()
        ref = node.system.ref("counter", "c1")
        for amount in (1, 2, 3):
            await ref.tell(Add(amount=amount))
        log.info("feeder sent", messages=3)
        await trio.sleep_forever()
"""


async def test_sigterm_passivates_actors_and_their_state_is_saved(tmp_path: Path) -> None:
    modules = tmp_path / "modules"
    modules.mkdir()
    write(modules / "lifecycle_actors.py", LIFECYCLE_ACTORS)
    data = tmp_path / "data"
    config = write(tmp_path / "lifecycle.toml", f"""\
        [http]
        enabled = false

        [[supervisor.children]]
        type = "service"
        name = "timers"
        service = "timers"

        [[supervisor.children]]
        type = "actors"
        kind = "counter"
        actor = "lifecycle_actors:Counter"
        options = {{ state_dir = {json.dumps(str(data))} }}

        [[supervisor.children]]
        type = "service"
        name = "feeder"
        service = "lifecycle_actors:feeder"
        """)
    async with tektree("run", "--config", str(config), "--data-dir", str(data),
                       cwd=tmp_path, pythonpath=(modules,)) as node:
        await node.wait_for("node started")
        await node.wait_for("feeder sent")
        node.process.send_signal(signal.SIGTERM)
        assert await node.finish() == 0, node.stderr
    assert (data / "c1.state").read_text() == "6"
    passivated = next(e for e in node.entries if e["event"] == "activations passivated")
    assert passivated["passivated"] == 1


# --------------------------------------------------------------------------- failures


FAILING_SERVICE = """\
    from typing import Any


    async def serve(node: Any, spec: Any, *, task_status: Any) -> None:
        raise RuntimeError("flaky dependency is down")
"""


async def test_root_failure_exits_1_with_one_critical_line(tmp_path: Path) -> None:
    modules = tmp_path / "modules"
    modules.mkdir()
    write(modules / "failing_service.py", FAILING_SERVICE)
    config = write(tmp_path / "failing.toml", """\
        [http]
        enabled = false

        [supervisor]
        max_restarts = 1
        backoff_initial_seconds = 0.01

        [[supervisor.children]]
        type = "service"
        name = "timers"
        service = "timers"

        [[supervisor.children]]
        type = "service"
        name = "flaky"
        service = "failing_service:serve"
        """)
    async with tektree("run", "--config", str(config), "--data-dir", str(tmp_path / "data"),
                       cwd=tmp_path, pythonpath=(modules,)) as node:
        assert await node.finish() == 1, node.stderr
    critical = [e for e in node.entries if e["level"] == "critical"]
    assert len(critical) == 1, node.stderr
    assert "supervisor 'root' exceeded 1 restarts" in critical[0]["event"]
    assert "flaky dependency is down" in critical[0]["event"]
    assert all(line.startswith("{") for line in node.lines), node.stderr  # no traceback dump
    assert "Traceback" not in node.stderr


async def _tektree_once(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(START_SECONDS):
        return await trio.run_process(
            _command(*args), cwd=cwd, env=_env(), check=False,
            capture_stdout=True, capture_stderr=True,
        )


BAD_STRATEGY = """\
    [supervisor]
    strategy = "one_for_none"
"""


async def test_bad_config_exits_2_naming_the_setting(tmp_path: Path) -> None:
    config = write(tmp_path / "bad.toml", BAD_STRATEGY)
    result = await _tektree_once("run", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.decode().startswith("tektree: config error: supervisor.strategy: ")
    assert b"one_for_none" in result.stderr
    assert b"Traceback" not in result.stderr


async def test_bad_child_path_exits_2_naming_the_child(tmp_path: Path) -> None:
    config = write(tmp_path / "bad.toml", """\
        [[supervisor.children]]
        type = "service"
        name = "ghost"
        service = "no_such_module:serve"
        """)
    result = await _tektree_once("run", "--config", str(config),
                                 "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert result.returncode == 2
    assert b"supervisor.children[0].service" in result.stderr
    assert b"Traceback" not in result.stderr


async def test_bad_flag_value_exits_2(tmp_path: Path) -> None:
    result = await _tektree_once("run", "--port", "70000", cwd=tmp_path)
    assert result.returncode == 2
    assert b"http.port" in result.stderr


# --------------------------------------------------------------------------- config


async def test_config_check_ok_names_the_source(tmp_path: Path) -> None:
    shutil.copy(REPO / "supervisor.toml", tmp_path / "supervisor.toml")
    result = await _tektree_once("config", "check", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, b"ok: supervisor.toml\n")


async def test_config_check_without_a_file_uses_the_defaults(tmp_path: Path) -> None:
    result = await _tektree_once("config", "check", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, b"ok: <defaults>\n")


async def test_config_check_reports_the_error(tmp_path: Path) -> None:
    config = write(tmp_path / "bad.toml", BAD_STRATEGY)
    result = await _tektree_once("config", "check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert b"supervisor.strategy" in result.stderr
    assert result.stdout == b""


async def test_config_env_prints_the_markdown_table(tmp_path: Path) -> None:
    result = await _tektree_once("config", "env", cwd=tmp_path)
    assert result.returncode == 0
    assert b"| `TEKTREE_HTTP_PORT` | `http.port` |" in result.stdout


def test_main_returns_exit_codes_in_process(
    tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    from tektree.cli import main

    monkeypatch.chdir(tmp_path)
    write(tmp_path / "bad.toml", BAD_STRATEGY)
    assert main(["config", "check", "--config", "bad.toml"]) == 2
    assert "supervisor.strategy" in capsys.readouterr().err
    assert main(["config", "check"]) == 0
    assert capsys.readouterr().out == "ok: <defaults>\n"

