"""Coarse-to-fine schedules: which sizes to optimize at, how many steps each gets, and the driver that runs them.

The driver (``coarse_to_fine``) serves stylize's pyramid and Deep Dream's octaves alike, as pystiche's
pyramid driver serves any criterion: a task says how to bind its criterion to a level's size, where a
level starts from the level below, and how to optimize there; the driver walks the levels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, TypeVar

C = TypeVar("C")  # a level's criterion: the objective with its targets bound at that size
X = TypeVar("X")  # the image being optimized


def pyramid_sizes(size: int, start: int = 256, ratio: float = math.sqrt(2)) -> list[int]:
    """Long-side sizes from about ``start`` up to ``size`` in steps of ``ratio``, ending exactly at ``size``."""
    if size <= start:
        return [size]
    levels = math.ceil(math.log(size / start) / math.log(ratio))
    return [round(size / ratio ** k) for k in range(levels, -1, -1)]


def split_iterations(total: int, sizes: list[int], power: float = 0.5) -> list[int]:
    """Split ``total`` steps across levels, more on the cheap small ones (weight ~ 1 / side ** power).

    Measured at 512 px on EfficientNet-Lite0: against weights ~ 1 / side, this halves the final
    full-resolution loss in the same time, because the top level gets enough steps to rebuild the
    fine texture that each upsampling blurs.

    Every level gets at least one step, so ``total`` must be at least ``len(sizes)``.
    """
    if total < len(sizes):
        raise ValueError(f"{total} steps cannot cover {len(sizes)} levels")
    weights = [s ** -power for s in sizes]
    raw = [total * w / sum(weights) for w in weights]
    steps = [max(1, int(r)) for r in raw]
    while sum(steps) > total:  # the max(1, ...) floors took too many: take them back from the biggest share
        steps[steps.index(max(steps))] -= 1
    steps[0] += total - sum(steps)  # rounding goes to the cheapest level
    return steps


def octave_sizes(size: int, octaves: int, scale: float) -> list[int]:
    """Deep Dream's octaves: ``octaves`` long sides, each ``scale`` times the last, ending at ``size``."""
    return [max(32, round(size / scale ** k)) for k in range(octaves - 1, -1, -1)]


class Levels(Protocol[C, X]):
    """What a task gives the driver: its criterion at a size, a level's start, and one level's optimization."""

    def bind(self, size: int) -> C:
        """The criterion at this level's size (its targets computed, or re-bound, there)."""
        ...

    def start(self, criterion: C, below: X | None) -> X:
        """Where the level starts: from the level below's result, or (``None``) from scratch."""
        ...

    def optimize(self, criterion: C, start: X, steps: int) -> X:
        """``steps`` steps of the task's optimizer from ``start``; the level's result."""
        ...


def coarse_to_fine(levels: Levels[C, X], sizes: Sequence[int], steps: Sequence[int]) -> X:
    """Optimize at each size in turn, each level starting from the one below; the top level's result."""
    if not sizes or len(sizes) != len(steps):
        raise ValueError(f"a schedule needs one step count per size, got {list(sizes)} and {list(steps)}")
    result: X | None = None
    for size, count in zip(sizes, steps):
        criterion = levels.bind(size)
        result = levels.optimize(criterion, levels.start(criterion, result), count)
    assert result is not None
    return result
