"""Total variation: the mean squared difference of neighbouring pixels, a smoothness prior."""

from __future__ import annotations

import torch

from .base import Term


class TVLoss(Term):
    name = "tv"

    def forward(self, feats: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        total = image.new_zeros(())
        if image.shape[-1] > 1:  # a 1-px wide or high image has no neighbours that way
            total = total + (image[..., :, 1:] - image[..., :, :-1]).pow(2).mean()
        if image.shape[-2] > 1:
            total = total + (image[..., 1:, :] - image[..., :-1, :]).pow(2).mean()
        return total
