"""The cyclic garbage collector of a node: what ``[node] gc_young_threshold`` sets.

A node holds many long-lived container objects: its actors' states (a profile's state is a few
dozen dicts and lists; 10,000 activations are hundreds of thousands of objects), the sockets of
its gateway (some hundred objects each: Hypercorn's connection, wsproto's state, trio's tasks,
the pub/sub subscription), its modules. CPython's default thresholds (700, 10, 10) run a young
collection every 700 allocations, and a full collection whenever the survivors since the last
one pass a quarter of the long-lived objects, which activations and sockets opening keep doing.
A full collection walks every tracked object. Measured here:

- the XP loop (``python -m bench game``, 10,000 profiles): 29 full collections of ~0.67 s each
  during 30,000 events, 31 s of garbage collection in 54 s of CPU; with the young threshold at
  10,000: no full collection, 1.1 s;
- 1,000 sockets on a board: 6-7 full collections of 100-220 ms during ten broadcasts (p99
  delivery 160-560 ms; 50-60 ms with the collector off).

:func:`settle_collector`, called once the node has started, freezes what exists then (modules,
the actor system, the app: never collected again, ``gc.freeze``) and collects young objects
every ``threshold`` allocations instead of 700, so full collections become rare. Memory is
unchanged for acyclic garbage (reference counting frees it as before); cyclic garbage waits a
little longer.

It is process-wide, so it is a ``[node]`` setting: 0 by default (a node built in code, e.g. by a
test suite, keeps CPython's collector), 10,000 in the shipped ``supervisor.toml``.
"""

from __future__ import annotations

import gc

__all__ = ["settle_collector"]


def settle_collector(threshold: int) -> bool:
    """Freeze the started node's objects and set the young threshold; False when
    ``threshold`` is 0 (the collector is left as it is)."""
    if threshold <= 0:
        return False
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(threshold, middle, old)
    return True
