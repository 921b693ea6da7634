"""What a backbone is: how to build it, preprocess for it, load its weights, and which taps it has."""

from __future__ import annotations

import difflib
import math
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import torch
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from ..errors import UserError
from .pooling import ScaledAvgPool2d


@dataclass(frozen=True)
class Tap:
    """A named layer output: ``name`` as the user writes it, ``node`` in the traced graph."""

    name: str
    node: str
    channels: int
    stride: int


@dataclass(frozen=True, eq=False)  # hashed by identity, for the tap cache
class BackboneSpec:
    """One entry of the registry. Adding a network means writing one of these."""

    name: str
    build: Callable[[], nn.Module]  # the architecture, randomly initialised
    mean: tuple[float, float, float]  # preprocessing: (rgb01 - mean) / std
    std: tuple[float, float, float]
    style_taps: dict[str, float]  # default style taps and their weights
    content_taps: dict[str, float]
    description: str
    torchvision_name: str | None = None  # weights come from torchvision's enum ...
    local_weights: Callable[[], str] | None = None  # ... or from a file shipped in a package
    convert: Callable[[dict], dict] = lambda sd: sd  # maps a checkpoint's keys onto build()'s
    head: tuple[str, ...] = ()  # module prefixes a weights file may omit (classifier)
    aliases: dict[str, str] = field(default_factory=dict)  # friendly tap name -> graph node
    probe_size: int = 224  # input size used to measure channels and strides
    defaults: dict[str, float] = field(default_factory=dict)  # per-backbone loss weights etc.
    dream_taps: tuple[str, ...] = ()  # default Deep Dream taps, best first

    @property
    def offline(self) -> bool:
        return self.local_weights is not None


def prepare(model: nn.Module) -> nn.Module:
    """Eval mode, frozen, and no in-place activations (they would overwrite earlier taps)."""
    for m in model.modules():
        if hasattr(m, "inplace"):
            m.inplace = False
    model.eval().requires_grad_(False)
    return model


def trace(model: nn.Module, nodes) -> nn.Module:
    """torchvision's feature extractor for ``nodes``: the graph is cut after the last one needed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's note that train and eval graphs differ
        return create_feature_extractor(model, {n: n for n in nodes},
                                        tracer_kwargs={"leaf_modules": [ScaledAvgPool2d]})


@lru_cache(maxsize=None)
def list_taps(spec: BackboneSpec) -> tuple[Tap, ...]:
    """Every tappable 4-D output of the network, in forward order. Needs no weights."""
    with torch.device("meta"):  # shapes only: no memory, no slow weight init
        model = prepare(spec.build())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nodes = [n for n in get_graph_node_names(model)[1] if n != "x"]
    order = {n: i for i, n in enumerate(nodes)}
    # Whole blocks too ('layer2', 'blocks.5'): a block's output is its last node.
    targets = {n: n for n in nodes}
    for name, _ in model.named_modules():
        inside = [n for n in nodes if n.startswith(name + ".")] if name and name not in order else []
        if inside:
            targets[name] = max(inside, key=order.__getitem__)
    extractor = trace(model, nodes)
    with torch.no_grad():
        outs = extractor(torch.zeros(1, 3, spec.probe_size, spec.probe_size, device="meta"))
    node_to_alias = {v: k for k, v in spec.aliases.items()}

    def display(name: str) -> str:  # 'features.3.squeeze' -> 'fire2.squeeze' when fire2 = features.3
        head, rest = name, ""
        while head:
            if head in node_to_alias:
                return node_to_alias[head] + rest
            head, _, last = head.rpartition(".")
            rest = f".{last}{rest}"
        return name

    taps = []
    for name, node in sorted(targets.items(), key=lambda kv: (order[kv[1]], -kv[0].count("."))):
        out = outs[node]
        if isinstance(out, torch.Tensor) and out.dim() == 4:
            stride = 2 ** max(0, round(math.log2(spec.probe_size / out.shape[-1])))
            taps.append(Tap(display(name), node, int(out.shape[1]), stride))
    return tuple(taps)


def resolve_taps(spec: BackboneSpec, names: list[str] | tuple[str, ...]) -> list[Tap]:
    """Look up taps by name (a friendly alias or the raw graph node); UserError lists the valid names."""
    taps = list_taps(spec)
    by_name = {t.name: t for t in taps} | {t.node: t for t in taps}
    out = []
    for name in names:
        if name not in by_name:
            close = difflib.get_close_matches(name, list(by_name), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise UserError(
                f"unknown tap '{name}' for {spec.name}{hint}; valid taps: "
                + ", ".join(t.name for t in taps)
            )
        out.append(by_name[name])
    return out
