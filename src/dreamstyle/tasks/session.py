"""What every network-running workflow shares, built once: the device, the precision, the network and the
thread governor; and what an interrupted run keeps.

stylize, dream, explore and train open a :class:`Session`; sheet, video and the studio reuse the workflows'
prepared runs, and with them one session.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..backbones import RANDOM, Backbone, get_backbone
from ..errors import UserError
from ..events import Run
from ..images import check_input_file, save_image
from ..runtime import check_precision, prepare_cpu, resolve_device, resolve_precision
from ..settings import NetworkSettings
from ..threads import govern


@dataclass
class Session:
    """A device, the network's precision there, and the network itself (from the backbone cache)."""

    device: torch.device
    precision: str
    backbone: Backbone

    @classmethod
    def open(cls, s: NetworkSettings, taps: list[str], pooling: str = "max") -> Session:
        """Resolve the device and precision for ``s`` (``taps``: what the calibration measures) and check out
        the network; a user's weights file with NaN or infinite values is refused here."""
        device = resolve_device(s.device)
        if device.type == "cpu":
            prepare_cpu()
        precision = network_precision(s.precision, device, s.model, s.weights, taps)
        backbone = get_backbone(s.model, s.weights, device, precision, pooling)
        refuse_non_finite(backbone, s.weights)
        return cls(device, precision, backbone)

    def govern(self, events: Run) -> None:
        """On a CPU, let the thread governor follow ``events`` (fewer threads when the machine is busy)."""
        if self.device.type == "cpu":
            govern(events)


def keep_image(events: Run, image: Image.Image | None, output: Path | None, params: dict[str, Any],
               started: float | None = None, **extra: Any) -> tuple[Any, Path | None]:
    """What an interrupted run keeps: ``image`` (its best so far) saved to ``output``, with the parameters,
    where it stopped and (from ``started``) how long it ran; ``events`` is told. Nothing for no image."""
    if image is None:
        return None, None
    kept = {**params, **extra, "interrupted_at": events.done}
    if started is not None:
        kept["seconds"] = round(time.perf_counter() - started, 2)
    path = save_image(image, output, kept) if output is not None else None
    events.finish(image, path, kept, interrupted=True)
    return image, path


def network_precision(precision: str, device: torch.device, model: str, weights: object,
                      taps: list[str]) -> str:
    """What ``precision`` means for this network here: as given, or for ``auto`` bf16 on CUDA GPUs that
    support it, and on CPU whatever a one-time measurement on this processor found faster at an equal
    loss (see calibrate.py)."""
    check_precision(precision)
    if precision != "auto" or device.type != "cpu":
        return resolve_precision(precision, device)
    from ..calibrate import cpu_precision

    return cpu_precision(model, None if weights is None else str(weights),
                         lambda: get_backbone(model, weights, device, "fp32").extractor(taps))


def check_weights_file(weights: str | os.PathLike | None) -> None:
    """A ``weights`` file must be a readable regular file (a FIFO would hang the read): one line otherwise.
    Checked before anything loads; stylize, dream, explore and train share it."""
    if weights is not None and str(weights) != RANDOM:
        check_input_file(weights, "a weights file (.pth, .pt, .safetensors or .npz)")


_FINITE: weakref.WeakSet = weakref.WeakSet()  # networks already found finite (the backbone cache reuses them)


def refuse_non_finite(backbone: Backbone, weights: str | os.PathLike | None) -> None:
    """Refuse, in one line, a network whose ``weights`` file holds NaN or infinite values: every loss would be
    NaN, or a matrix square root fail to converge. Only a user's file is checked (once per loaded network)."""
    if weights is None or str(weights) == RANDOM or backbone.model in _FINITE:
        return
    tensors: Iterable[tuple[str, torch.Tensor]] = [*backbone.model.named_parameters(),
                                                    *backbone.model.named_buffers()]
    for name, t in tensors:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise UserError(f"weights file '{weights}' holds values that are not finite numbers (NaN or infinity, "
                            f"in {name}); give weights saved from a healthy network")
    _FINITE.add(backbone.model)
