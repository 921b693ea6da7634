"""Colour control (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style Transfer").

``luminance``: transfer on luminance only, then put the result's luminance into the content's chroma.
``match``: recolour the style image so its colour mean and covariance equal the content's.
"""

from __future__ import annotations

import torch

from .settings import PRESERVE_COLOR  # noqa: F401 (re-exported)

# NTSC YIQ; rows give Y, I, Q from RGB.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.5959, -0.2746, -0.3213], [0.2115, -0.5227, 0.3112]])


def _apply(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", matrix.to(image), image)


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> YIQ."""
    return _apply(_RGB_TO_YIQ, image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    return _apply(torch.linalg.inv(_RGB_TO_YIQ), image)


def luminance_rgb(image: torch.Tensor) -> torch.Tensor:
    """The image's luminance, repeated on three channels (what the network sees in luminance mode)."""
    return rgb_to_yiq(image)[:, :1].expand(-1, 3, -1, -1).contiguous()


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Luminance-only style: the style's luminance, shifted and scaled to the content's mean and std."""
    ys, yc = luminance_rgb(style), luminance_rgb(content)
    return ((ys - ys.mean()) * (yc.std() / ys.std().clamp_min(1e-6)) + yc.mean()).clamp(0, 1)


def combine_luminance(result: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The result's luminance Y with the content's chroma I and Q, back in RGB, clamped to [0, 1]."""
    if content.shape[-2:] != result.shape[-2:]:
        content = torch.nn.functional.interpolate(content, size=result.shape[-2:], mode="bicubic",
                                                  align_corners=False)
    yiq = torch.cat([rgb_to_yiq(result)[:, :1], rgb_to_yiq(content)[:, 1:]], dim=1)
    return yiq_to_rgb(yiq).clamp(0, 1)


def _mean_cov(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = image.reshape(3, -1).double()
    mean = pixels.mean(1, keepdim=True)
    centered = pixels - mean
    return mean, centered @ centered.T / pixels.shape[1] + 1e-5 * torch.eye(3, dtype=pixels.dtype, device=pixels.device)


def _sqrtm(cov: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(cov)
    vals = vals.clamp_min(1e-8) ** (-0.5 if inverse else 0.5)
    return vecs @ torch.diag(vals) @ vecs.T


def match_color(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Affine recolouring of ``style`` (1, 3, H, W) to ``content``'s colour mean and covariance.

    Uses the symmetric (PCA-free, rotation-free) square-root transform x' = Cc^1/2 Cs^-1/2 (x - ms) + mc.
    """
    ms, cs = _mean_cov(style)
    mc, cc = _mean_cov(content)
    transform = _sqrtm(cc) @ _sqrtm(cs, inverse=True)
    pixels = style.reshape(3, -1).double()
    out = transform @ (pixels - ms) + mc
    return out.reshape(style.shape).to(style.dtype).clamp(0, 1)
