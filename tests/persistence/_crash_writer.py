"""Crash-test helper: appends journal events until killed, printing each acknowledged append.

Usage: python _crash_writer.py DB_PATH WRITERS. Each writer task owns actor ``a<k>`` and appends
units of 3 events; after each append is acknowledged it prints ``a<k> <last seq>`` (flushed).
"""

from __future__ import annotations

import sys

import trio

from tektree.persistence import Journal, JournalEvent, StoreSettings, open_store


async def main(path: str, writers: int) -> None:
    async with open_store(StoreSettings(sqlite_path=path, max_threads=4)) as store:
        journal = Journal(store)

        async def writer(k: int) -> None:
            actor, n = f"a{k}", 0
            while True:
                events = [
                    JournalEvent(event_id=f"{actor}-{n + i}", event_type="add", data={"v": n + i})
                    for i in range(3)
                ]
                stored = await journal.append(actor, events)
                n += 3
                print(actor, stored[-1].seq, flush=True)

        async with trio.open_nursery() as nursery:
            for k in range(writers):
                nursery.start_soon(writer, k)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]))
