"""``--pooling avg``: Gatys et al. found average pooling gives slightly smoother results than max pooling."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def reset_calibration(model: nn.Module) -> None:
    """Forget every ScaledAvgPool2d's calibration, so the next input (the next run's content) sets it anew."""
    for m in model.modules():
        if isinstance(m, ScaledAvgPool2d):
            m.scale.zero_()


class ScaledAvgPool2d(nn.Module):
    """Average pooling rescaled so its outputs keep max pooling's magnitude.

    The scale is calibrated on the first input it sees (the content image's activations):
    mean(max_pool(x)) / mean(avg_pool(x)), so later layers see activations of the size they expect.
    """

    def __init__(self, pool: nn.MaxPool2d) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = pool.kernel_size, pool.stride, pool.padding
        self.ceil_mode = pool.ceil_mode
        self.scale: torch.Tensor
        self.register_buffer("scale", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, count_include_pad=False)
        if not self.scale:
            with torch.no_grad():
                peak = F.max_pool2d(x, self.kernel_size, self.stride, self.padding, ceil_mode=self.ceil_mode)
                self.scale.fill_(float(peak.mean() / avg.mean().clamp_min(1e-8)))
        return avg * self.scale


def use_avg_pooling(model: nn.Module) -> int:
    """Replace every MaxPool2d with a ScaledAvgPool2d in place; returns how many were replaced."""
    count = 0
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d):
                setattr(parent, name, ScaledAvgPool2d(child))
                count += 1
    return count
