"""Networks with named taps: the registry, weight loading, the multi-tap feature extractor and a cache.

The registry and the tap table are torch-free; ``Backbone``, ``FeatureExtractor``, ``load_model`` and
``get_backbone`` import torch when first used.
"""

from __future__ import annotations

from typing import Any

from ..lazy import lazy_attributes
from .registry import DEFAULT_BACKBONE, POOLINGS, SPECS, get_spec, register, weights_here
from .spec import BackboneSpec, Tap
from .taps import list_taps, min_side, resolve_taps

RANDOM = "random"  # --weights random: untrained weights, for structure tests and timing

_LAZY = {"EDGE_PAD": "extractor", "Backbone": "extractor", "FeatureExtractor": "extractor", "load_model": "weights",
         "get_backbone": "cache", "clear_cache": "cache"}


_lazy = lazy_attributes(__name__, _LAZY)


def __getattr__(name: str) -> Any:
    return _lazy(name)


__all__ = ["EDGE_PAD", "Backbone", "FeatureExtractor", "BackboneSpec", "Tap", "DEFAULT_BACKBONE", "SPECS", "get_spec",
           "register", "POOLINGS", "list_taps", "resolve_taps", "min_side", "load_model", "get_backbone", "clear_cache",
           "RANDOM", "weights_here"]
