"""Style model files: a state dict plus metadata, loadable with ``torch.load(weights_only=True)``.

A file holds ``{"format": "dreamstyle-style-model", "arch", "state_dict", "meta"}``; ``meta`` records the
style, the training settings and the dreamstyle version. A training checkpoint adds ``"train"``: the
optimizer's state and the step, so ``--resume`` continues where it stopped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..errors import UserError
from ..images import atomic_path
from .network import ARCHITECTURES, TransformerNet
from .styles import bundled_styles, find_bundled

FORMAT = "dreamstyle-style-model"


@dataclass
class StyleModel:
    net: TransformerNet
    meta: dict[str, Any]
    path: Path | None = None
    train: dict[str, Any] = field(default_factory=dict)  # optimizer state and step, in checkpoints

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or (self.path.stem if self.path else "style"))


def save_model(net: TransformerNet, path: str | os.PathLike, meta: dict[str, Any], *, half: bool = False,
               train: dict[str, Any] | None = None) -> Path:
    """Write a model file atomically; ``half`` stores the weights in fp16 (half the size, for bundling)."""
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
             for k, v in net.state_dict().items()}
    blob: dict[str, Any] = {"format": FORMAT, "arch": net.arch, "state_dict": state,
                            "meta": {**meta, "dreamstyle": __version__, "arch": net.arch}}
    if train is not None:
        blob["train"] = train
    p = Path(path)
    with atomic_path(p) as tmp:
        torch.save(blob, tmp)
    return p


def resolve_model(model: str | os.PathLike) -> Path:
    """A bundled style name or a model file -> the file; a clear error for anything else."""
    text = str(model)
    bundled = find_bundled(text)
    if bundled is not None:
        return bundled
    p = Path(text)
    if p.is_file():
        return p
    names = ", ".join(bundled_styles()) or "none installed"
    if p.suffix or os.sep in text:
        raise UserError(f"model file '{text}' does not exist; give a .pt or .onnx file, or a bundled style "
                        f"({names})")
    raise UserError(f"unknown style '{text}'; choose a bundled style ({names}) or give a model file")


def load_model(model: str | os.PathLike, device: torch.device | str = "cpu") -> StyleModel:
    """Load a bundled style or a .pt model file (fp32, eval mode); one-line errors for bad files."""
    path = resolve_model(model)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - every way a foreign or damaged file fails
        text = str(e).lower()
        if "zip" in text or "central directory" in text or "stream" in text or "eof" in text:
            raise UserError(f"'{path}' is damaged or not a model file ({_short(e)}); train or export it again") \
                from None
        raise UserError(f"'{path}' is not a dreamstyle style model ({_short(e)}); give a file written by "
                        "`dreamstyle train`, or a bundled style name") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise UserError(f"'{path}' is a PyTorch file but not a dreamstyle style model; give a file written by "
                        "`dreamstyle train`, or a bundled style name")
    arch = blob.get("arch")
    if arch not in ARCHITECTURES:
        raise UserError(f"'{path}' has an unknown architecture {arch!r}; it needs a newer dreamstyle")
    net = TransformerNet(arch)
    try:
        net.load_state_dict({k: v.float() for k, v in blob["state_dict"].items()})
    except (RuntimeError, KeyError, AttributeError) as e:
        raise UserError(f"'{path}' does not fit the {arch} network ({_short(e)}); train it again") from None
    net.eval().requires_grad_(False)
    return StyleModel(net.to(device), dict(blob.get("meta") or {}), path, dict(blob.get("train") or {}))


def _short(e: BaseException) -> str:
    line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return line[:120]
