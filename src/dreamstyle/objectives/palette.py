"""The painting's palette as a whole distribution: a sliced Wasserstein distance between colours.

Mean-and-covariance (or Gram) statistics see a painting's colours as one Gaussian. The Great Wave is
two colours far apart, a pale beige and a deep Prussian blue, and one Gaussian fitted to that is a
pale blue-beige: a network trained on it paints a wash. Sorting the colours along a few directions
and comparing the sorted lists (the sliced Wasserstein distance of Rabin et al. 2011, as Heitz et al.
2021 use it for textures) matches the whole distribution, so the darks come back as darks.
"""

from __future__ import annotations

import torch

from .base import EPS, Term

# Directions in RGB: lightness, the two opponent axes, and seeded random ones.
_FIXED = ((1.0, 1.0, 1.0), (1.0, -1.0, 0.0), (0.5, 0.5, -1.0))


def directions(count: int = 16, seed: int = 0) -> torch.Tensor:
    """(count, 3) unit vectors: the three fixed ones, then seeded random ones."""
    fixed = torch.tensor(_FIXED[:count])
    extra = torch.randn(max(count - len(fixed), 0), 3, generator=torch.Generator().manual_seed(seed))
    both = torch.cat([fixed, extra])
    return both / both.norm(dim=1, keepdim=True)


MAX_PIXELS = 8192  # the picture's colours are sorted from about this many pixels (the painting's from all)


def sorted_projections(image: torch.Tensor, dirs: torch.Tensor, samples: int,
                       max_pixels: int | None = None) -> torch.Tensor:
    """(N, 3, H, W) -> (N, D, samples): each item's colours projected on ``dirs``, at ``samples`` quantiles.

    ``max_pixels``: take every k-th pixel (k odd, so the kept pixels are not whole columns of the picture) to
    sort at most about that many; all of a 256-px crop's 65,536 made training 1.6x slower."""
    pixels = image.flatten(2)  # (N, 3, P)
    if max_pixels is not None and pixels.shape[-1] > max_pixels:
        step = -(-pixels.shape[-1] // max_pixels) | 1
        pixels = pixels[..., ::step]
    projected = torch.einsum("dc,ncp->ndp", dirs.to(pixels), pixels).sort(dim=-1).values
    count = projected.shape[-1]
    at = torch.linspace(0, count - 1, min(samples, count), device=image.device).round().long()
    return projected.index_select(-1, at)


class PaletteLoss(Term):
    """Sliced Wasserstein distance from a picture's colours to the painting's, relative to the painting's
    own spread (so one weight works for a muted drawing and a vivid canvas)."""

    name = "palette"

    def __init__(self, painting: torch.Tensor, directions_count: int = 16, samples: int = 1024) -> None:
        super().__init__()
        self.samples = samples
        self.dirs = directions(directions_count)
        self.bind(painting)

    def bind(self, painting: torch.Tensor) -> None:
        """``painting``: (1, 3, H, W) in [0, 1]."""
        target = sorted_projections(painting.detach().float(), self.dirs, self.samples)
        self.target = target
        self.scale = target.var(dim=-1).mean() + EPS

    def forward(self, feats: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        ours = sorted_projections(image.float(), self.dirs, self.samples, MAX_PIXELS)
        target = self.target.to(ours)
        if target.shape[-1] != ours.shape[-1]:  # a picture with fewer pixels than samples
            target = torch.nn.functional.interpolate(target, size=ours.shape[-1], mode="linear", align_corners=True)
        return (ours - target).pow(2).mean() / self.scale.to(ours)
