"""Share the CPU gracefully: use every core when the machine is idle, fewer when other programs are busy.

torch's intra-op threads wait for each other at the end of every operation. When another program
holds a core, a thread that lost its core keeps the others spinning: on a 2-core machine one busy
single-threaded program made the default stylize 6x slower with 2 threads, while 1 thread was barely
slowed (BENCHMARKS.md). The :class:`ThreadGovernor` is a run-event subscriber: about once a second it
measures how many cores other processes used since its last look (from /proc/stat, no waiting) and
sets torch's thread count to the cores left over, never above the count it started with (so an
explicit ``OMP_NUM_THREADS`` or ``torch.set_num_threads`` is a ceiling it keeps).
"""

from __future__ import annotations

import os
import time
from typing import Any

from .events import Event, Step

CHECK_SECONDS = 1.0  # how often to look, at most
BUSY_SHARE = 0.5  # another program using this share of a core counts as holding it


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of all cores since boot, or None where /proc/stat is missing."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def _own_jiffies() -> float:
    t = os.times()
    return (t.user + t.system) * os.sysconf("SC_CLK_TCK")


def _other_cores(before: tuple[tuple[int, int] | None, float], after: tuple[tuple[int, int] | None, float],
                 cores: int) -> float | None:
    """Cores other processes used between two looks, each (the machine's jiffies, this process's); None where
    /proc/stat is missing or no time passed."""
    if before[0] is None or after[0] is None:
        return None
    busy, total = after[0][0] - before[0][0], after[0][1] - before[0][1]
    if total <= 0:
        return None
    return cores * max(0.0, busy - (after[1] - before[1])) / total


def _held(other: float) -> int:
    """Whole cores that ``other`` cores of use hold: a part of BUSY_SHARE or more counts as a core."""
    return int(other // 1 + (1 if other % 1 >= BUSY_SHARE else 0))


class ThreadGovernor:
    """Sets torch's intra-op thread count to the cores other processes leave free (a Step subscriber)."""

    def __init__(self, ceiling: int | None = None) -> None:
        import torch

        self.torch = torch
        self.ceiling = ceiling or torch.get_num_threads()
        self.cores = os.cpu_count() or 1
        self.last: tuple[float, tuple[int, int] | None, float] | None = None
        self.history: list[tuple[float, int]] = []  # (other cores, threads chosen), for benchmarks

    def sample(self) -> float | None:
        """Cores used by other processes since the previous sample (None on the first call)."""
        now = (time.monotonic(), _cpu_jiffies(), _own_jiffies())
        previous, self.last = self.last, now
        return None if previous is None else _other_cores(previous[1:], now[1:], self.cores)

    def settle(self, wait: float = 0.1) -> None:
        """Look once before a run starts (a short wait), so a busy machine is known from the first step."""
        self.sample()
        time.sleep(wait)
        self.adjust()

    def adjust(self) -> int:
        other = self.sample()
        threads = self.torch.get_num_threads()
        if other is not None:
            threads = max(1, min(self.ceiling, self.cores - _held(other)))
            if threads != self.torch.get_num_threads():
                self.torch.set_num_threads(threads)
            self.history.append((round(other, 2), threads))
        return threads

    def __call__(self, event: Event) -> None:
        if isinstance(event, Step) and self.last is not None and time.monotonic() - self.last[0] >= CHECK_SECONDS:
            self.adjust()


def free_cores(wait: float = 0.2) -> int:
    """How many of this process's cores other programs leave free now (a look of ``wait`` seconds, as the
    governor's); all of them where /proc/stat is missing. Sizes the batch's local pool."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    before = (_cpu_jiffies(), _own_jiffies())
    if before[0] is None:
        return cores
    time.sleep(wait)
    other = _other_cores(before, (_cpu_jiffies(), _own_jiffies()), os.cpu_count() or cores)
    return cores if other is None else max(1, cores - _held(other))


_governor: ThreadGovernor | None = None


def governor() -> ThreadGovernor:
    """The process's one governor (its ceiling is torch's thread count when first asked for)."""
    global _governor
    if _governor is None:
        _governor = ThreadGovernor()
    return _governor


def govern(run: Any) -> None:
    """Subscribe the governor to ``run`` (once), after a first look at the machine; off with
    DREAMSTYLE_THREADS=fixed."""
    if os.environ.get("DREAMSTYLE_THREADS", "auto") == "fixed":
        return
    g = governor()
    if g.ceiling <= 1:
        return  # one thread already (OMP_NUM_THREADS=1, or a one-core machine): nothing to govern
    target = getattr(run, "parent", None) or run
    if any(s is g for s, _ in target.subscribers):
        return
    g.settle()
    target.subscribe(g)
