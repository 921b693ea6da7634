"""Style loss: Gram matrices of the output against (blended) Gram matrices of the style images."""

from __future__ import annotations

import torch

from .base import Term, relative_mse


def gram(feat: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, C), divided by the number of positions H * W."""
    n, c, h, w = feat.shape
    f = feat.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (h * w)


class StyleLoss(Term):
    """Several style images blend by a weighted mean of their Gram matrices."""

    name = "style"

    def __init__(self, taps: dict[str, float], style_feats: list[dict[str, torch.Tensor]],
                 blend: list[float] | None = None) -> None:
        self.taps = dict(taps)
        blend = blend or [1.0] * len(style_feats)
        total = sum(blend)
        self.targets = {
            t: sum(b / total * gram(feats[t]).detach() for b, feats in zip(blend, style_feats)) for t in self.taps
        }

    def __call__(self, feats: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        return sum(w * relative_mse(gram(feats[t]), self.targets[t]) for t, w in self.taps.items())
