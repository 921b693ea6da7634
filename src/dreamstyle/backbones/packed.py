"""Weights shipped inside dreamstyle, packed small and exact (no pickle).

A weight tensor with at most 256 distinct values (a codebook-quantized network, such as the Deep
Compression SqueezeNet) is stored as its sorted values and one uint8 index per element; other tensors
as they are. ``np.savez_compressed`` then shrinks the pruned zeros. Unpacking gives back exactly the
original float32 tensors.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

DATA = Path(__file__).with_name("weights_data")


def pack(state: dict, path: str | os.PathLike) -> Path:
    """Write a state dict (name -> array-like) to ``path`` (.npz)."""
    arrays: dict[str, np.ndarray] = {}
    for name, tensor in state.items():
        a = np.asarray(tensor.detach().cpu().numpy() if hasattr(tensor, "detach") else tensor)
        values, index = np.unique(a, return_inverse=True)
        if len(values) <= 256 and a.size > 256:
            arrays[f"{name}::values"] = values
            arrays[f"{name}::index"] = index.reshape(a.shape).astype(np.uint8)
        else:
            arrays[name] = a
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]  # numpy stubs type **kwds as allow_pickle
    return Path(path)


def unpack(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a packed state dict as numpy arrays (the caller makes tensors of them)."""
    out: dict[str, np.ndarray] = {}
    with np.load(path, allow_pickle=False) as packed:
        for key in packed.files:
            name, _, part = key.partition("::")
            if part == "index":
                out[name] = packed[f"{name}::values"][packed[key]]
            elif not part:
                out[name] = packed[key]
    return out


def squeezenet1_0_path() -> str:
    """The bundled ImageNet SqueezeNet 1.0 (Deep Compression, BSD licence: weights_data/LICENSE-squeezenet)."""
    return str(DATA / "squeezenet1_0_imagenet.npz")
