"""Peak-memory estimate for a run, so that a size that cannot fit is refused before any work."""

from __future__ import annotations

import math
import os
from typing import Callable

import torch
from torch import nn

from ..errors import UserError

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
    ph, pw = probe.shape[-2:]
    total = 0

    def count(_m, _inp, out) -> None:
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


def available_bytes(device: torch.device) -> int:
    """Free memory where the run happens: the GPU's, or the machine's available RAM."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def estimate_peak_bytes(module: nn.Module, probe: torch.Tensor, height: int, width: int) -> float:
    return BASE_BYTES + BYTES_PER_ACTIVATION * activation_elements(module, probe, height, width)


def largest_fitting_size(size: int, estimate: float, available: float) -> int:
    """Activation memory grows with the pixel count, so the long side that fits scales with its square root."""
    room = max(available - BASE_BYTES, 0.0) / max(estimate - BASE_BYTES, 1.0)
    return int(size * math.sqrt(room) // 16 * 16)


def require(need: float, device: torch.device, what: str, fix: Callable[[float], str]) -> None:
    """Refuse up front, in one line, when ``need`` bytes are more than ``device`` has free.

    ``what`` names the run ("--size 2048 with vgg19"); ``fix(free_bytes)`` says what to change.
    """
    have = available_bytes(device)
    if need > have:
        raise UserError(f"{what} needs about {need / 2**30:.1f} GiB but {have / 2**30:.1f} GiB is free; {fix(have)}")
