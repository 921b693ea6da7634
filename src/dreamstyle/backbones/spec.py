"""What a backbone is (torch-free): how to build it, preprocess for it, load its weights, its taps' names.

Builders and weight sources are lazy callables, so the registry can be read (``dreamstyle models``,
``layers``, option checks) without importing torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Tap:
    """A named layer output: ``name`` as the user writes it, ``node`` in the traced graph.

    ``min_side``: the smallest square input (pixels) for which the network reaches this tap.
    """

    name: str
    node: str
    channels: int
    stride: int
    min_side: int = 1


class Lazy:
    """``module:attr`` imported on first call, then called with ``kwargs`` (and the call's own arguments)."""

    def __init__(self, target: str, **kwargs: Any) -> None:
        self.target, self.kwargs = target, kwargs

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)(*args, **{**self.kwargs, **kwargs})

    def __repr__(self) -> str:
        return f"Lazy({self.target!r})"


def _same(state: dict) -> dict:
    return state


@dataclass(frozen=True, eq=False)  # hashed by identity, for the tap cache
class BackboneSpec:
    """One entry of the registry. Adding a network means writing one of these."""

    name: str
    build: Callable[[], Any]  # the architecture (an nn.Module), randomly initialised
    mean: tuple[float, float, float]  # preprocessing: (rgb01 - mean) / std
    std: tuple[float, float, float]
    style_taps: dict[str, float]  # default style taps and their weights
    content_taps: dict[str, float]
    description: str
    torchvision_name: str | None = None  # weights come from torchvision's enum ...
    local_weights: Callable[[], str] | None = None  # ... or from a file shipped in a package
    convert: Callable[[dict], dict] = _same  # maps a checkpoint's keys onto build()'s
    head: tuple[str, ...] = ()  # module prefixes a weights file may omit (classifier)
    aliases: dict[str, str] = field(default_factory=dict)  # friendly tap name -> graph node
    probe_size: int = 224  # input size used to measure channels and strides
    defaults: dict[str, Any] = field(default_factory=dict)  # per-backbone loss weights etc.
    dream_taps: tuple[str, ...] = ()  # default Deep Dream taps, best first

    @property
    def offline(self) -> bool:
        return self.local_weights is not None
