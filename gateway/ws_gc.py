"""The cyclic garbage collector of a node that holds thousands of sockets.

Each open socket is some hundred container objects (Hypercorn's connection, wsproto's state,
trio's tasks and cancel scopes, the pub/sub subscription), all long-lived. CPython's default
thresholds (700, 10, 10) run a young collection every 700 allocations, and a full collection
whenever the survivors since the last one pass a quarter of the long-lived objects, which
sockets opening keep doing. A full collection walks every tracked object, the whole node's
included: measured here with 1,000 sockets on a board, 6-7 full collections of 100-220 ms each
during ten broadcasts (p99 delivery 160-560 ms; 50-60 ms with the collector off).

:func:`settle_collector`, called once the node has started, freezes what exists then (modules,
the actor system, the app: ~120,000 objects never collected again, `gc.freeze`) and collects
young objects every ``threshold`` allocations instead of 700, so full collections become rare
and walk only what came after the start: no full collection during the same ten broadcasts,
p99 59 ms. Memory is unchanged (garbage without cycles is freed by reference counting as
before; cyclic garbage waits a little longer).

It is process-wide, so it is the gateway option ``gc_young_threshold``: 0 by default (a node
built in code, e.g. by a test suite, keeps CPython's collector), 10,000 in the shipped
``supervisor.toml``.
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
