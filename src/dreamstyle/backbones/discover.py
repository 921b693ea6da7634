"""Tap discovery (needs torch): trace a network on the meta device (tracing.py) and list its 4-D outputs.

``python -m dreamstyle.backbones.discover`` rewrites ``taps.json``, the table that lets ``layers`` and
every option check name taps without importing torch; a test checks the table matches discovery.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn

from .spec import BackboneSpec, Tap
from .tracing import extract, node_names

TABLE = Path(__file__).with_name("taps.json")
MAX_MIN_SIDE = 512  # searched up to this many pixels


def prepare(model: nn.Module) -> nn.Module:
    """Eval mode, frozen, and no in-place activations (they would overwrite earlier taps)."""
    for m in model.modules():
        if hasattr(m, "inplace"):
            m.inplace = False  # type: ignore[assignment]
    model.eval().requires_grad_(False)
    return model


def trace(model: nn.Module, nodes: Any) -> fx.GraphModule:
    """The feature extractor for ``nodes``: the graph is cut after the last one needed."""
    return extract(model, nodes)


def _reached(graph: fx.GraphModule, side: int) -> set[str]:
    """Graph nodes computed before the first failure on a ``side`` x ``side`` input (meta tensors)."""
    done: set[str] = set()

    class Recorder(fx.Interpreter):
        def run_node(self, n: fx.Node) -> Any:
            out = super().run_node(n)
            done.add(n.name)
            return out

    try:
        with torch.no_grad():
            Recorder(graph).run(torch.zeros(1, 3, side, side, device="meta"))
    except Exception:  # noqa: BLE001 - any failure means "too small from here on"
        pass
    return done


def discover_taps(spec: BackboneSpec) -> tuple[Tap, ...]:
    """Every tappable 4-D output of the network in forward order, with its smallest valid input. No weights."""
    with torch.device("meta"):  # shapes only: no memory, no slow weight init
        model = prepare(spec.build())
    nodes = node_names(model)
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
    # torchvision names graph nodes like 'blocks.5' as 'blocks_5'; map each output key to its fx node name
    out_node = {key: _fx_name(extractor, key) for key in outs}
    min_side = _min_sides(extractor, out_node)

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
            taps.append(Tap(display(name), node, int(out.shape[1]), stride, min_side.get(node, MAX_MIN_SIDE)))
    return tuple(taps)


def _fx_name(graph: fx.GraphModule, key: str) -> str:
    """The fx node whose value the extractor returns under ``key``."""
    output = next(n for n in graph.graph.nodes if n.op == "output")
    value = output.args[0][key]
    return value.name if isinstance(value, fx.Node) else key


def _min_sides(graph: fx.GraphModule, out_node: dict[str, str]) -> dict[str, int]:
    """For each output key, the smallest square input side whose forward reaches it (binary search per key)."""
    reached_at: dict[int, set[str]] = {}

    def ok(key: str, side: int) -> bool:
        if side not in reached_at:
            reached_at[side] = _reached(graph, side)
        return out_node[key] in reached_at[side]

    result = {}
    for key in out_node:
        lo, hi = 1, MAX_MIN_SIDE
        if not ok(key, hi):
            result[key] = MAX_MIN_SIDE
            continue
        while lo < hi:  # reaching a node is monotone in the input size
            mid = (lo + hi) // 2
            if ok(key, mid):
                hi = mid
            else:
                lo = mid + 1
        result[key] = lo
    return result


def table(specs: dict[str, BackboneSpec]) -> dict[str, list[list]]:
    return {name: [[t.name, t.node, t.channels, t.stride, t.min_side] for t in discover_taps(spec)]
            for name, spec in specs.items()}


def main() -> int:
    from .registry import SPECS

    TABLE.write_text(json.dumps(table(SPECS), separators=(",", ":")) + "\n")
    print(f"wrote {TABLE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
