"""The painting's palette on the photo: colour statistics matched in OkLab (Ottosson 2020).

Used as stylize's start (``--init palette``): the photo recoloured so its colours have the painting's mean
and covariance, in a perceptual space where lightness and hue move independently. A dark or muted
painting then starts dark or muted, and the optimization only has to add strokes, not fight the
photo's colours. As in NNST's colour correction, the result is clamped to the painting's own range.
"""

from __future__ import annotations

import torch

_RGB_TO_LMS = torch.tensor([[0.4122214708, 0.5363325363, 0.0514459929],
                            [0.2119034982, 0.6806995451, 0.1073969566],
                            [0.0883024619, 0.2817188376, 0.6299787005]], dtype=torch.float64)
_LMS_TO_LAB = torch.tensor([[0.2104542553, 0.7936177850, -0.0040720468],
                            [1.9779984951, -2.4285922050, 0.4505937099],
                            [0.0259040371, 0.7827717662, -0.8086757660]], dtype=torch.float64)


def _linear(srgb: torch.Tensor) -> torch.Tensor:
    return torch.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055).clamp_min(0) ** 2.4)


def _gamma(lin: torch.Tensor) -> torch.Tensor:
    lin = lin.clamp(0, 1)
    return torch.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)


def rgb_to_oklab(pixels: torch.Tensor) -> torch.Tensor:
    """(3, P) sRGB in [0, 1] -> (3, P) OkLab, in float64."""
    lms = _RGB_TO_LMS @ _linear(pixels.double())
    return _LMS_TO_LAB @ (torch.sign(lms) * lms.abs() ** (1 / 3))


def oklab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """(3, P) OkLab -> (3, P) sRGB clamped to [0, 1]."""
    lms = torch.linalg.inv(_LMS_TO_LAB) @ lab
    return _gamma(torch.linalg.inv(_RGB_TO_LMS) @ lms ** 3)


def _mean_cov(lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = lab.mean(1, keepdim=True)
    centered = lab - mean
    return mean, centered @ centered.T / lab.shape[1] + 1e-6 * torch.eye(3, dtype=lab.dtype)


def _sqrtm(cov: torch.Tensor, power: float) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(cov)
    return vecs @ torch.diag(vals.clamp_min(1e-10) ** power) @ vecs.T


def match_palette(image: torch.Tensor, painting: torch.Tensor) -> torch.Tensor:
    """``image`` (1, 3, H, W) recoloured to ``painting``'s OkLab mean and covariance, within its range."""
    src = rgb_to_oklab(image.detach().reshape(3, -1).cpu())
    ref = rgb_to_oklab(painting.detach().reshape(3, -1).cpu())
    ms, cs = _mean_cov(src)
    mr, cr = _mean_cov(ref)
    # the symmetric (rotation-free) map between two Gaussians: Cr^1/2 (Cr^1/2 Cs Cr^1/2)^-1/2 Cr^1/2
    root = _sqrtm(cr, 0.5)
    transform = root @ _sqrtm(root @ cs @ root, -0.5) @ root
    out = transform @ (src - ms) + mr
    low, high = ref.amin(1, keepdim=True), ref.amax(1, keepdim=True)
    out = torch.maximum(torch.minimum(out, high), low)
    return oklab_to_rgb(out).reshape(image.shape).to(image.dtype).to(image.device)
