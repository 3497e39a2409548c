"""CPU time of processes, for the benches' CPU-per-operation lines (printed, not figures)."""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["CpuMeter", "cpu_seconds"]


def cpu_seconds(pid: int) -> float:
    """CPU seconds ``pid`` has used so far, all its threads: from ``/proc/<pid>/task/*/
    schedstat`` (nanoseconds), or ``/proc/<pid>/stat``'s utime + stime (clock ticks) where
    schedstat is missing; 0.0 where ``/proc`` is not there (the line then says nothing)."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    try:
        for task in tasks:
            with open(f"/proc/{pid}/task/{task}/schedstat") as file:
                total += int(file.read().split()[0])
    except FileNotFoundError:  # a thread that ended meanwhile, or no schedstat: use stat
        try:
            with open(f"/proc/{pid}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total / 1e9


class CpuMeter:
    """The CPU time several processes (by name) use between :meth:`start` and :meth:`stop`."""

    def __init__(self, pids: Mapping[str, int | None]) -> None:
        self.pids = {name: pid for name, pid in pids.items() if pid is not None}
        self._start: dict[str, float] = {}
        #: Microseconds of CPU per operation of each process, set by :meth:`stop`.
        self.per_op: dict[str, float] = {}

    def start(self) -> None:
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self, ops: int) -> None:
        """Set :attr:`per_op` for ``ops`` operations since :meth:`start`."""
        self.per_op = {
            name: (cpu_seconds(pid) - self._start[name]) * 1e6 / max(ops, 1)
            for name, pid in self.pids.items()
        }

    def line(self) -> str:
        """``"name 123.4, ..."`` (us of CPU per operation), for a progress line."""
        return ", ".join(f"{name} {us:,.1f}" for name, us in self.per_op.items())
