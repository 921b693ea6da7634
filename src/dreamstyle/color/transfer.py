"""Colour control (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style Transfer").

``luminance``: transfer on luminance only, then put the result's luminance into the content's chroma.
``match``: recolour the style image so its colour mean and covariance equal the content's.

And the other way round, stylize's default start (``--init palette``): :func:`match_palette` recolours the
photo so its colours have the painting's mean and covariance in OkLab (Ottosson 2020), where lightness
and hue move independently. A dark or muted painting then starts dark or muted, and the optimization
only has to add strokes instead of fighting the photo's colours. As in NNST's colour correction
(Kolkin et al. 2022), the result is clamped to the painting's own range.
"""

from __future__ import annotations

import torch

from .options import RGB_TO_YIQ

_RGB_TO_YIQ = torch.tensor(RGB_TO_YIQ)


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


# --- the painting's palette on the photo (OkLab) ---------------------------------------------------

_RGB_TO_LMS = torch.tensor([[0.4122214708, 0.5363325363, 0.0514459929],
                            [0.2119034982, 0.6806995451, 0.1073969566],
                            [0.0883024619, 0.2817188376, 0.6299787005]], dtype=torch.float64)
_LMS_TO_LAB = torch.tensor([[0.2104542553, 0.7936177850, -0.0040720468],
                            [1.9779984951, -2.4285922050, 0.4505937099],
                            [0.0259040371, 0.7827717662, -0.8086757660]], dtype=torch.float64)
# Covariances get this much added (OkLab units squared, about 1% of a colour channel's range): a near-grey
# painting's flat chroma then maps the photo's chroma to near grey instead of blowing up a 1/sqrt(0).
_PALETTE_EPS = 1e-4


def rgb_to_oklab(pixels: torch.Tensor) -> torch.Tensor:
    """(3, P) sRGB in [0, 1] -> (3, P) OkLab, in float64."""
    srgb = pixels.double()
    linear = torch.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055).clamp_min(0) ** 2.4)
    lms = _RGB_TO_LMS @ linear
    return _LMS_TO_LAB @ (torch.sign(lms) * lms.abs() ** (1 / 3))


def oklab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """(3, P) OkLab -> (3, P) sRGB clamped to [0, 1]."""
    linear = (torch.linalg.inv(_RGB_TO_LMS) @ (torch.linalg.inv(_LMS_TO_LAB) @ lab) ** 3).clamp(0, 1)
    return torch.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)


def match_palette(image: torch.Tensor, paintings: torch.Tensor | list[torch.Tensor],
                  blend: list[float] | None = None) -> torch.Tensor:
    """``image`` (1, 3, H, W) recoloured to the OkLab mean and covariance of ``paintings`` (blended by
    ``blend``: a weighted mixture of their colours), and clamped to their range."""
    refs = [paintings] if isinstance(paintings, torch.Tensor) else list(paintings)
    weights = [1.0] * len(refs) if blend is None else [float(b) for b in blend]
    src = rgb_to_oklab(image.detach().reshape(3, -1).cpu())
    labs = [rgb_to_oklab(r.detach().reshape(3, -1).cpu()) for r in refs]
    total = sum(weights)
    mr = torch.stack([w / total * lab.mean(1, keepdim=True) for w, lab in zip(weights, labs)]).sum(0)
    # the mixture's covariance: each painting's second moment about the blended mean
    cr = torch.stack([w / total * (lab - mr) @ (lab - mr).T / lab.shape[1] for w, lab in zip(weights, labs)]).sum(0)
    ms = src.mean(1, keepdim=True)
    cs = (src - ms) @ (src - ms).T / src.shape[1]
    eye = _PALETTE_EPS * torch.eye(3, dtype=src.dtype)
    cr, cs = cr + eye, cs + eye
    # the symmetric (rotation-free) map between two Gaussians: Cr^1/2 (Cr^1/2 Cs Cr^1/2)^-1/2 Cr^1/2
    root = _sqrtm(cr)
    transform = root @ _sqrtm(root @ cs @ root, inverse=True) @ root
    out = transform @ (src - ms) + mr
    used = [lab for w, lab in zip(weights, labs) if w > 0]  # a painting blended at 0 has no say at all
    low = torch.stack([lab.amin(1) for lab in used]).amin(0)[:, None]
    high = torch.stack([lab.amax(1) for lab in used]).amax(0)[:, None]
    out = torch.maximum(torch.minimum(out, high), low)
    return oklab_to_rgb(out).reshape(image.shape).to(image.dtype).to(image.device)
