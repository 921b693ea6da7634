"""Total variation: the mean squared difference of neighbouring pixels, a smoothness prior."""

from __future__ import annotations

import torch

from .base import Term


class TVLoss(Term):
    name = "tv"

    def __call__(self, feats: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        dx = image[..., :, 1:] - image[..., :, :-1]
        dy = image[..., 1:, :] - image[..., :-1, :]
        return dx.pow(2).mean() + dy.pow(2).mean()
