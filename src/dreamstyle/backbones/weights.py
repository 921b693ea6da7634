"""Loading a backbone's weights: the bundled checkpoint, torchvision's (downloaded and cached), or a file."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from . import RANDOM
from .discover import prepare
from .spec import BackboneSpec


def _read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict safely (no pickled code): safetensors or ``torch.load(weights_only=True)``."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"weights file '{path}' is a folder; give the path of a .pth/.pt or .safetensors file")
    if not path.is_file():
        raise UserError(f"weights file '{path}' not found; check the path given to --weights")
    if not os.access(path, os.R_OK):
        raise UserError(f"cannot read weights file '{path}': permission denied; check the file's permissions")
    try:
        with warnings.catch_warnings():  # torch's own warnings about the file would come before our one line
            warnings.simplefilter("ignore")
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(path))
            elif path.suffix == ".npz":  # dreamstyle's packed form (see packed.py)
                from .packed import unpack

                state = {k: torch.from_numpy(v) for k, v in unpack(path).items()}
            else:
                state = torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError:
        raise UserError(f"cannot read weights file '{path}': permission denied; check the file's permissions") from None
    except ImportError:
        raise UserError("reading .safetensors needs the safetensors package; pip install safetensors") from None
    except Exception as exc:  # pickle, zip and format errors all mean the same thing to the user
        raise UserError(f"cannot read weights file '{path}': it is not a PyTorch checkpoint that loads "
                        f"safely ({type(exc).__name__}); give a state dict (.pth/.pt), a .safetensors or a packed "
                        ".npz file") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"weights file '{path}' does not hold a state dict of tensors")
    return state


def _cached_torchvision_weights(spec: BackboneSpec) -> Path:
    """Download torchvision's default weights into torch's hub cache, or explain how to do without."""
    import torchvision

    weights = torchvision.models.get_model_weights(spec.torchvision_name).DEFAULT
    cache = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
    if cache.is_file():
        return cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(weights.url, str(cache), progress=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"could not download the {spec.name} weights {weights.url} ({reason}); they are cached at "
            f"{cache} once downloaded: fetch that file on a machine with internet and pass it with "
            f"--weights FILE, or use --model efficientnet_lite0, whose weights ship with dreamstyle and work offline"
        ) from None
    return cache


def load_model(spec: BackboneSpec, weights: str | os.PathLike | None = None) -> nn.Module:
    """Build ``spec``'s network with ``weights``: None for the default source, a file, or 'random'."""
    if weights is not None and str(weights) == RANDOM:
        return prepare(spec.build())
    if weights is not None:
        state = _read_state_dict(weights)
        source = f"weights file '{weights}'"
    elif spec.local_weights is not None:
        state = _read_state_dict(spec.local_weights())
        source = f"the bundled {spec.name} weights"
    else:
        state = _read_state_dict(_cached_torchvision_weights(spec))
        source = f"torchvision's {spec.name} weights"
    state = spec.convert(state)
    with torch.device("meta"):  # skip the random init that the loaded weights replace
        model = spec.build()
    try:
        result = model.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as exc:  # shape mismatches
        detail = str(exc).strip().splitlines()[-1].strip()
        raise UserError(f"{source} do not fit {spec.name} ({detail}); pass weights saved from this "
                        "architecture") from None
    missing = [k for k in result.missing_keys if not k.startswith(spec.head)]
    if missing or result.unexpected_keys:
        example = (missing + result.unexpected_keys)[0]
        raise UserError(
            f"{source} do not fit {spec.name}: {len(missing)} missing and {len(result.unexpected_keys)} "
            f"unexpected keys (e.g. '{example}'); pass weights saved from this architecture"
        )
    # Parts a file may leave out (the classifier) are still on 'meta': give those tensors zeros.
    for module in model.modules():
        for group in (module._parameters, module._buffers):
            for key, tensor in group.items():
                if tensor is not None and tensor.is_meta:
                    zeros = torch.zeros(tensor.shape, dtype=tensor.dtype)
                    group[key] = nn.Parameter(zeros, requires_grad=False) if group is module._parameters else zeros
    return prepare(model)
