"""Graph tracing that names each node by where it is in the network (torch.fx; no torchvision needed).

A node's name is the path of the module it runs in: ``blocks.5.dw.0`` for a submodule call,
``blocks.2.add`` for a function called inside ``blocks.2``, and ``layer1.0.relu_1`` for the second
call of the same module (the names torchvision's feature extraction gives, which the taps use). The
extractor graph keeps only what the requested nodes need, so the network runs only as deep as the
deepest tap. Tracing here instead of through torchvision saves its package import (about 1.5 s) on
every run of the default network, whose builder needs no torchvision.

torch.fx traces by patching ``nn.Module.__call__`` and ``__getattr__`` for the whole process, so a trace
must never overlap another trace, and another thread's networks must not be recorded into it (the studio
runs a warm-up, jobs and live frames in threads). :class:`PathTracer` takes one process-wide lock for
the whole trace and lets every other thread's module calls and attribute reads through untouched.
"""

from __future__ import annotations

import inspect
import re
import sys
import threading
from collections.abc import Iterable
from typing import Any

from torch import fx, nn

_COPY = re.compile(r"_\d+$")  # fx's own suffix for the n-th node of the same name
TRACE_LOCK = threading.RLock()  # one trace at a time in the process: fx's patches are global


def leaf_types() -> tuple[type, ...]:
    """Modules traced as one node: dreamstyle's scaled average pooling and, for networks built by
    torchvision (which is then imported already), torchvision's ops modules, as its feature extraction
    does (so MobileNet's ``features.0`` is one tap)."""
    from .pooling import ScaledAvgPool2d

    leaves: list[type] = [ScaledAvgPool2d]
    ops = sys.modules.get("torchvision.ops")
    if ops is not None:
        leaves += [c for _, c in inspect.getmembers(ops, inspect.isclass) if issubclass(c, nn.Module)]
    return tuple(leaves)


class PathTracer(fx.Tracer):
    def __init__(self, leaves: Iterable[type] | None = None) -> None:
        super().__init__()
        self.leaves = leaf_types() if leaves is None else tuple(leaves)
        self._path = ""
        self.names: dict[fx.Node, str] = {}
        self._counts: dict[str, int] = {}
        self._owner: int | None = None  # the thread tracing; other threads pass through the patches

    def trace(self, root: Any, concrete_args: dict[str, Any] | None = None) -> fx.Graph:
        """Trace ``root`` while holding the process-wide trace lock."""
        with TRACE_LOCK:
            self._owner = threading.get_ident()
            try:
                return super().trace(root, concrete_args)
            finally:
                self._owner = None

    def _foreign(self) -> bool:
        """True in any thread but the one tracing: fx's global patches must not record its calls."""
        return threading.get_ident() != self._owner

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict[str, Any]) -> Any:
        if self._foreign():
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, self.leaves) or super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward: Any, args: tuple, kwargs: dict) -> Any:
        if self._foreign():  # another thread running a network while this one traces
            return forward(*args, **kwargs)
        outer, self._path = self._path, self.path_of_module(m)
        try:
            return super().call_module(m, forward, args, kwargs)
        finally:
            self._path = outer

    def create_proxy(self, kind: str, target: Any, args: tuple, kwargs: dict, name: str | None = None,
                     type_expr: Any = None, *rest: Any, **more: Any) -> fx.Proxy:
        proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr, *rest, **more)
        node = proxy.node
        if kind in ("placeholder", "output"):
            base = node.name
        elif kind == "call_module":
            base = str(target)
        else:
            base = f"{self._path}.{_COPY.sub('', node.name)}" if self._path else _COPY.sub("", node.name)
        count = self._counts.get(base, 0)
        self._counts[base] = count + 1
        self.names[node] = base if count == 0 else f"{base}_{count}"
        return proxy


def node_names(model: nn.Module, leaves: Iterable[type] | None = None) -> list[str]:
    """Every node of the traced forward, by path, in order (the input placeholder excluded)."""
    tracer = PathTracer(leaves)
    graph = tracer.trace(model)
    return [tracer.names[n] for n in graph.nodes if n.op not in ("placeholder", "output") and n in tracer.names]


def extract(model: nn.Module, nodes: Iterable[str], leaves: Iterable[type] | None = None) -> fx.GraphModule:
    """A GraphModule: image -> {node name: its output} for ``nodes``, cut after the last one needed."""
    tracer = PathTracer(leaves)
    graph = tracer.trace(model)
    by_name = {name: node for node, name in tracer.names.items()}
    wanted = list(dict.fromkeys(nodes))
    missing = [n for n in wanted if n not in by_name]
    if missing:
        raise KeyError(f"no node named {missing[0]!r} in the traced graph")
    old = next(n for n in graph.nodes if n.op == "output")
    with graph.inserting_before(old):
        graph.output({name: by_name[name] for name in wanted})
    graph.erase_node(old)
    module = fx.GraphModule(model, graph, class_name=type(model).__name__)
    module.graph.eliminate_dead_code()  # the network ends at the deepest node asked for
    module.delete_all_unused_submodules()
    module.recompile()
    return module
