"""kill -9 a process mid-write: every acknowledged append survives, no unit is half-written."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import trio

from tektree.persistence import Journal, StoreSettings, open_store

HELPER = Path(__file__).with_name("_crash_writer.py")
REPO = Path(__file__).resolve().parents[2]
WRITERS = 4
ACKED_EVENTS_BEFORE_KILL = 900  # 300 appends of 3


async def test_sigkill_loses_no_acknowledged_append(tmp_path: Path) -> None:
    db = tmp_path / "crash.sqlite3"
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = await trio.lowlevel.open_process(
        [sys.executable, str(HELPER), str(db), str(WRITERS)],
        stdout=subprocess.PIPE,
        env=env,
    )
    acked: dict[str, int] = {}
    buffer = b""
    try:
        assert proc.stdout is not None
        with trio.fail_after(30):
            while len(acked) < WRITERS or sum(acked.values()) < ACKED_EVENTS_BEFORE_KILL:
                chunk = await proc.stdout.receive_some(65536)
                assert chunk, f"writer exited early with {await proc.wait()}"
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    actor, seq = line.decode().split()
                    acked[actor] = max(acked.get(actor, 0), int(seq))
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        with trio.CancelScope(shield=True), trio.fail_after(10):
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
    assert proc.returncode == -signal.SIGKILL

    raw = sqlite3.connect(db)
    try:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = raw.execute(
            "SELECT json_extract(doc, '$.actor_id'), json_extract(doc, '$.seq') FROM c_journal"
        ).fetchall()
    finally:
        raw.close()
    by_actor: dict[str, list[int]] = {}
    for actor, seq in rows:
        by_actor.setdefault(actor, []).append(seq)
    for actor, last_acked in acked.items():
        seqs = sorted(by_actor[actor])
        assert seqs == list(range(1, len(seqs) + 1)), f"{actor}: gap in journal"
        assert len(seqs) >= last_acked, f"{actor}: acknowledged seq {last_acked} lost"
        assert len(seqs) % 3 == 0, f"{actor}: a unit of 3 events was half-written"

    async with open_store(StoreSettings(sqlite_path=db)) as store:
        journal = Journal(store)
        for actor, last_acked in acked.items():
            state, _, events = await journal.recover(actor)
            values = [e.data["v"] for e in events]
            assert state is None and values == list(range(len(values)))
            assert len(values) >= last_acked
            nxt = await journal.append(actor, [])
            assert nxt == []
