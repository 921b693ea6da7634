"""Peak-memory estimate for a run, so that a size that cannot fit is refused before any work.

What the process may still allocate (the machine's free memory, the address-space limit, the cgroup's) is
read torch-free in :mod:`dreamstyle.fastnet.budget`, which also checks an ONNX style network's run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from PIL import Image
    from torch import nn

from ..fastnet.budget import Device, Fix, What, available_bytes, refuse_if_short

__all__ = ["activation_elements", "available_bytes", "estimate_peak_bytes", "largest_fitting_size", "require",
           "check_fits", "Device", "Fix"]

# A forward pass without gradients keeps only a few layers' outputs alive at once (a conservative share).
FORWARD_BYTES_PER_ACTIVATION = 2.0
# Peak memory ~ BASE_BYTES + BYTES_PER_ACTIVATION * (activation elements of one forward), fitted to the
# peak RSS of VGG-19 runs on CPU at 1024 px (4.67 GiB) and 2048 px (12.47 GiB); see BENCHMARKS.md.
# BASE_BYTES is the process itself (torch, the weights); the rest is saved activations, their
# gradients in flight, and the allocator's slack.
BYTES_PER_ACTIVATION = 6.0
BASE_BYTES = 2.0 * 2**30
PROBE = 128


def activation_elements(module: nn.Module, probe: torch.Tensor, height: int, width: int) -> float:
    """Elements of every leaf-module output for one forward at (height, width).

    Measured on ``probe``, a small image of the same aspect ratio (about PROBE px), and scaled by
    the pixel count, which is exact for convolutional networks up to rounding at the borders.
    """
    import torch

    ph, pw = probe.shape[-2:]
    total = 0

    def count(_m: Any, _inp: Any, out: Any) -> None:
        nonlocal total
        if isinstance(out, torch.Tensor):
            total += out.numel()

    leaves = [m for m in module.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            module(probe)
    finally:
        for h in hooks:
            h.remove()
    return total * (height * width) / (ph * pw)


def estimate_peak_bytes(module: nn.Module, probe: torch.Tensor, height: int, width: int) -> float:
    return BASE_BYTES + BYTES_PER_ACTIVATION * activation_elements(module, probe, height, width)


def largest_fitting_size(size: int, estimate: float, available: float) -> int:
    """Activation memory grows with the pixel count, so the long side that fits scales with its square root."""
    room = max(available - BASE_BYTES, 0.0) / max(estimate - BASE_BYTES, 1.0)
    return int(size * math.sqrt(room) // 16 * 16)


def require(need: float, device: Device, setting: str, what: What, fix: Fix) -> None:
    """Refuse up front, in one line, when ``need`` bytes are more than ``device`` has free.

    ``setting`` is the setting to change, ``what`` the run ("at 2048 px with vgg19", or a function of the
    setting the advice names); ``fix(free_bytes)``
    says what to change (other settings written ``{name}``, see SettingError), or returns (setting, text)
    to name another setting first.
    """
    refuse_if_short(need, available_bytes(device), setting, what, fix)


def check_fits(module: nn.Module, image: Image.Image, long_side: int, device: Device, what: str,
               lighter: str, *, setting: str = "size", backward: bool = True, batch: int = 1,
               extra_bytes: float = 0.0, suggest: Callable[[int], str] | None = None) -> float:
    """Refuse when running ``module`` on ``image`` at ``long_side`` px (``batch`` of them, with or without
    a backward pass, plus ``extra_bytes`` of image buffers) would not fit; returns the estimate.

    The advice names the largest long side that fits (``{setting} N or less``); ``suggest(N)`` words it
    otherwise (N may be below 16: nothing fits).
    """
    from ..images import resized_tensor

    scale = long_side / max(image.size)
    h, w = max(1, round(image.height * scale)), max(1, round(image.width * scale))
    elements = activation_elements(module, resized_tensor(image, PROBE, device), h, w)
    per = BYTES_PER_ACTIVATION if backward else FORWARD_BYTES_PER_ACTIVATION
    need = BASE_BYTES + per * elements * batch + extra_bytes

    def fix(have: float) -> str:
        fitting = largest_fitting_size(long_side, need - extra_bytes, have - extra_bytes)
        if suggest is not None:
            return suggest(fitting)
        return f"use {{{setting}}} {fitting} or less, or {lighter}" if fitting >= 16 else f"use {lighter}"

    require(need, device, setting, what, fix)
    return need
