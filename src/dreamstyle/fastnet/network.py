"""The image transformation network of Johnson, Alahi & Fei-Fei (2016), in three sizes.

Downsampling by strided convolutions, residual blocks, and upsampling by nearest-neighbour resize
then convolution (which, unlike transposed convolutions, leaves no checkerboard). Instance
normalization throughout (Ulyanov et al. 2016) and reflection padding, so borders look like the inside.

* ``standard``: Johnson's widths (32, 64, 128) and five full residual blocks, about 1.7M parameters.
* ``small``: for phones: widths (16, 32, 64) and five depthwise-separable residual blocks, about 0.1M.
* ``light``: no convolution at full resolution. The image is folded into half-resolution channels
  (pixel unshuffle), convolved at a half and a quarter of its size (widths 24 and 48, five separable
  residual blocks at a quarter), and the last half-resolution convolution's 12 channels unfold into
  the full-size RGB picture (pixel shuffle). About a quarter of ``small``'s multiply-adds.

The network maps an RGB image in [0, 1] to one in [0, 1] of the same size; any size works (sides are
padded to a multiple of 4 inside and cropped back).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ARCHITECTURES = ("standard", "small", "light")


def _conv(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(cin, cout, kernel, stride, groups=groups))


def _norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=True)


class _Residual(nn.Module):
    """Two 3x3 convolutions (depthwise-separable in ``small``) with instance norm, added to the input."""

    def __init__(self, channels: int, separable: bool) -> None:
        super().__init__()

        def conv() -> nn.Module:
            if not separable:
                return _conv(channels, channels, 3)
            return nn.Sequential(_conv(channels, channels, 3, groups=channels), nn.Conv2d(channels, channels, 1))

        self.body = nn.Sequential(conv(), _norm(channels), nn.ReLU(inplace=True), conv(), _norm(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _Up(nn.Module):
    """Nearest-neighbour 2x resize, then a 3x3 convolution, norm and ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv, self.norm = _conv(cin, cout, 3), _norm(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.relu(self.norm(self.conv(x)))


class _Light(nn.Module):
    """``light``: everything at a half or a quarter of the input's size (see the module's docstring)."""

    def __init__(self, a: int = 24, b: int = 48) -> None:
        super().__init__()
        self.down = nn.Sequential(
            nn.PixelUnshuffle(2), _conv(12, a, 3), _norm(a), nn.ReLU(inplace=True),  # 1/2
            _conv(a, b, 3, 2), _norm(b), nn.ReLU(inplace=True),  # 1/4
        )
        self.res = nn.Sequential(*[_Residual(b, separable=True) for _ in range(5)])
        self.up = nn.Sequential(_conv(b, a, 3), _norm(a), nn.ReLU(inplace=True))  # at 1/4, then resized to 1/2
        self.out = nn.Sequential(_conv(a, 12, 3), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(self.up(self.res(self.down(x))), scale_factor=2.0, mode="nearest")
        return self.out(x)


class TransformerNet(nn.Module):
    def __init__(self, arch: str = "small") -> None:
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        self.arch = arch
        if arch == "light":
            self.light = _Light()
            return
        a, b, c = (32, 64, 128) if arch == "standard" else (16, 32, 64)
        separable = arch == "small"
        self.down = nn.Sequential(
            _conv(3, a, 9), _norm(a), nn.ReLU(inplace=True),
            _conv(a, b, 3, 2), _norm(b), nn.ReLU(inplace=True),
            _conv(b, c, 3, 2), _norm(c), nn.ReLU(inplace=True),
        )
        self.res = nn.Sequential(*[_Residual(c, separable) for _ in range(5)])
        self.up = nn.Sequential(_Up(c, b), _Up(b, a))
        self.out = _conv(a, 3, 9)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        ph, pw = -h % 4, -w % 4  # two stride-2 stages: pad to a multiple of 4, crop back after
        x = F.pad(image, (0, pw, 0, ph), mode="replicate")  # no branch: the ONNX graph keeps any size
        if self.arch == "light":
            return torch.sigmoid(self.light(x * 2 - 1))[..., :h, :w]
        x = self.up(self.res(self.down(x * 2 - 1)))
        # The 3-channel 9x9 output convolution reads a channels-last input: oneDNN's backward of it is
        # about 6x faster so, which makes a training step about 1.6x faster (BENCHMARKS.md, issue 21).
        pad, conv = self.out
        x = conv(pad(x).contiguous(memory_format=torch.channels_last))
        # A sigmoid: outputs in [0, 1] with gradients everywhere (a clamp would stall dark and bright pixels).
        return torch.sigmoid(x)[..., :h, :w]


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
