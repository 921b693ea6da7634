"""A small cache of built backbones, for runs in one process (sheet cells, a dream zoom, the server).

Keyed by everything that changes the network: its name, the weights (and the file's size and time),
the device, the precision and the pooling. Average pooling calibrates its scale on its first input,
so every checkout resets that calibration: one run's content never shapes the next run's network.

Safe to share between threads (the studio's warm-up, its jobs and its live frames): a network is built
under the cache's lock, and tracing it for an extractor takes the tracer's process-wide lock
(``tracing.TRACE_LOCK``), so two threads never build or trace at once, and a thread running a network
is never recorded into another's trace. Two runs may use one cached network at the same time (their
forward passes only read it); with ``pooling='avg'`` a checkout resets the calibration the other uses.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path

import torch

from .extractor import Backbone
from .pooling import reset_calibration

SIZE = 3  # networks kept; a sheet sweeping more models rebuilds the oldest
_cache: OrderedDict[Hashable, Backbone] = OrderedDict()
_lock = threading.Lock()


def _weights_key(weights: str | os.PathLike | None) -> Hashable:
    if weights is None:
        return None
    try:
        stat = Path(weights).stat()
        return (str(weights), stat.st_size, stat.st_mtime_ns)
    except OSError:
        return str(weights)  # 'random', or a missing file that Backbone() will report


def get_backbone(name: str, weights: str | os.PathLike | None = None, device: torch.device | str = "cpu",
                 precision: str = "fp32", pooling: str = "max") -> Backbone:
    """A built Backbone, from the cache when an identical one was built before."""
    key = (name, _weights_key(weights), str(torch.device(device)), precision, pooling)
    with _lock:
        backbone = _cache.get(key)
        if backbone is None:
            backbone = Backbone(name, weights, device, precision, pooling)
            _cache[key] = backbone
            while len(_cache) > SIZE:
                _cache.popitem(last=False)
        _cache.move_to_end(key)
        reset_calibration(backbone.model)
        return backbone


def clear_cache() -> None:
    with _lock:
        _cache.clear()
