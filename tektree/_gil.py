"""The interpreter's thread switch interval while a node runs: what ``[node]
switch_interval_ms`` sets.

A node's trio thread shares the GIL with the worker threads it hands blocking calls to, above
all the SQLite store's writer thread (``tektree.persistence._sqlite``). That thread lets go of
the GIL for each SQLite statement and must take it back afterwards; while the trio thread runs
Python, taking it back waits until the trio thread blocks (its next ``epoll`` wait, at the end
of a scheduler batch) or until the switch interval has passed and the interpreter makes it let
go: CPython's 5 ms, per statement. A commit is a handful of statements (``BEGIN``, one
multi-row ``INSERT`` per collection, ``COMMIT``), so at 5 ms the writer mostly waited for the
GIL while the actors whose writes it held waited for it. Measured on the XP loop (``python -m
bench game``'s, 10,000 profiles, 64 feeders; interleaved runs on a noisy 2-core machine): with
the interval at 1 ms the trio thread was busy 83% of the time instead of 65%, and the loop
handled 13-32% more events per second in each of 4 rounds; 0.5 ms was no better than 1 ms on
the whole (more forced switches, each a wake-up of the other thread).

A shorter interval costs nothing while only one thread wants the GIL: the interval only
bounds how long a waiting thread waits. It is process-wide, so it is a ``[node]`` setting, set
while the node runs and put back when it stops: 0 by default (a node built in code, e.g. by a
test suite, leaves it alone), 1 in the shipped ``supervisor.toml``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["switch_interval"]


@contextmanager
def switch_interval(milliseconds: float) -> Iterator[None]:
    """Within the block, ``sys.setswitchinterval(milliseconds / 1000)``, then the interval it
    found; nothing at all when ``milliseconds`` is 0."""
    if milliseconds <= 0:
        yield
        return
    before = sys.getswitchinterval()
    sys.setswitchinterval(milliseconds / 1000)
    try:
        yield
    finally:
        sys.setswitchinterval(before)
