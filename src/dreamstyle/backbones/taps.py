"""A network's taps by name (torch-free): read from the shipped table, or discovered for new networks."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from functools import cache, lru_cache
from pathlib import Path

from ..errors import UserError
from .spec import BackboneSpec, Tap

TABLE = Path(__file__).with_name("taps.json")


@lru_cache(maxsize=1)
def _table() -> dict[str, list[list]]:
    try:
        return json.loads(TABLE.read_text())
    except (OSError, ValueError):
        return {}


@cache
def list_taps(spec: BackboneSpec) -> tuple[Tap, ...]:
    """Every tappable 4-D output of the network, in forward order. Needs no weights (nor torch, for
    the registered networks, whose taps ship in ``taps.json``)."""
    from .registry import SPECS

    rows = _table().get(spec.name) if SPECS.get(spec.name) is spec else None
    if rows:
        return tuple(Tap(*row) for row in rows)
    from .discover import discover_taps

    return discover_taps(spec)


def resolve_taps(spec: BackboneSpec, names: Iterable[str]) -> list[Tap]:
    """Look up taps by name (a friendly alias or the raw graph node); a UserError names the nearest ones."""
    taps = list_taps(spec)
    by_name = {t.name: t for t in taps} | {t.node: t for t in taps}
    out = []
    for name in names:
        if name not in by_name:
            close = difflib.get_close_matches(str(name), [t.name for t in taps], n=5, cutoff=0.5)
            hint = f"; the nearest are {', '.join(close)}" if close else ""
            raise UserError(f"unknown tap '{name}' for {spec.name}{hint}; `dreamstyle layers {spec.name}` "
                            f"lists all {len(taps)}")
        out.append(by_name[name])
    return out


def min_side(spec: BackboneSpec, names: Iterable[str]) -> int:
    """The smallest image side (pixels) that reaches every one of these taps."""
    return max((t.min_side for t in resolve_taps(spec, names)), default=1)
