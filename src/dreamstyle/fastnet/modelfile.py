"""Style model files: a state dict plus metadata, loadable with ``torch.load(weights_only=True)``.

A file holds ``{"format": "dreamstyle-style-model", "arch", "state_dict", "meta"}``; ``meta`` records the
style, the training settings and the dreamstyle version. A training checkpoint adds ``"train"``: the
optimizer's state and the step, so ``--resume`` continues where it stopped.
"""

from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import RunError, UserError
from ..images import atomic_path, check_input_file
from ..version import __version__
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
    """Write a model file atomically; ``half`` stores the weights in fp16 (half the size, for bundling).

    A write that fails (a full disk: torch reports it as a RuntimeError) is a one-line RunError, and no
    temporary file is left behind."""
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
             for k, v in net.state_dict().items()}
    blob: dict[str, Any] = {"format": FORMAT, "arch": net.arch, "state_dict": state,
                            "meta": {**meta, "dreamstyle": __version__, "arch": net.arch}}
    if train is not None:
        blob["train"] = train
    p = Path(path)
    with atomic_path(p) as tmp:
        try:
            torch.save(blob, tmp)
        except RuntimeError as e:  # torch's writer: "file write failed", "unexpected pos ..."
            free = _free_bytes(p.parent)
            why = "the disk is full; free some space" if free is not None and free < 64 * 2**20 else \
                f"the write failed ({_short(e)}); check free disk space"
            raise RunError(f"cannot write '{p}': {why} and run again") from None
    return p


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def resolve_model(model: str | os.PathLike) -> Path:
    """A bundled style name or a model file -> the file; a clear error for anything else (a missing file, a
    folder, a FIFO or device, a name too long)."""
    text = str(model)
    if not text.strip():
        raise UserError("the model is empty; give a .pt or .onnx file, or a bundled style "
                        f"({', '.join(bundled_styles()) or 'none installed'})")
    bundled = find_bundled(text)
    if bundled is not None:
        return bundled
    p = Path(text)
    try:
        exists = p.exists() or p.is_symlink()
    except OSError:  # a name or path too long: check_input_file says so
        exists = True
    if exists:
        return check_input_file(p, "a model file (.pt or .onnx)")
    names = ", ".join(bundled_styles()) or "none installed"
    if p.suffix or os.sep in text:
        raise UserError(f"model file '{text}' does not exist; give a .pt or .onnx file, or a bundled style "
                        f"({names})")
    raise UserError(f"unknown style '{text}'; choose a bundled style ({names}) or give a model file")


def load_model(model: str | os.PathLike, device: torch.device | str = "cpu") -> StyleModel:
    """Load a bundled style or a .pt model file (fp32, eval mode); one-line errors for bad files."""
    path = resolve_model(model)
    try:
        with warnings.catch_warnings():  # torch's "Detected pickle protocol ..." would come before our one line
            warnings.simplefilter("ignore")
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - every way a foreign or damaged file fails
        text = str(e).lower()
        if "weights only load failed" in text or "weights_only" in text or "unsupported global" in text:
            raise UserError(f"'{path}' is not a dreamstyle style model: it holds pickled Python objects, which "
                            "dreamstyle does not load (they could run code); give a file written by "
                            "`dreamstyle train`, or a bundled style name") from None
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
    state = blob.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"'{path}' does not hold the weights of a style network; train it again")
    bad = next((k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
    if bad is not None:
        raise UserError(f"'{path}' has weights that are not finite numbers (NaN or infinity, in {bad}); the model "
                        "is broken: train it again, or use an earlier checkpoint")
    try:
        net.load_state_dict({k: v.float() for k, v in state.items()})
    except (RuntimeError, KeyError, AttributeError) as e:
        raise UserError(f"'{path}' does not fit the {arch} network ({_short(e)}); train it again") from None
    net.eval().requires_grad_(False)
    return StyleModel(net.to(device), dict(blob.get("meta") or {}), path, dict(blob.get("train") or {}))


def _short(e: BaseException, keep: int = 120) -> str:
    """The first line of an error, cut at a word (a message never ends half-way through a word)."""
    line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if len(line) <= keep:
        return line
    return line[:keep].rsplit(" ", 1)[0].rstrip(" ,;:.(") + " ..."
