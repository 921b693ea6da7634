"""Content loss: feature maps of the output against those of the content image (Gatys et al. 2015)."""

from __future__ import annotations

import torch

from .base import Term, relative_mse


class ContentLoss(Term):
    name = "content"

    def __init__(self, taps: dict[str, float], target_feats: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.taps = dict(taps)
        self.bind(target_feats)

    def bind(self, target_feats: dict[str, torch.Tensor]) -> None:
        """Re-bind the targets: one per batch item (as when training on batches) or one for all."""
        self.targets = {t: target_feats[t].detach() for t in self.taps}

    def forward(self, feats: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        total = torch.zeros((), device=next(iter(feats.values())).device)
        for t, w in self.taps.items():
            total = total + w * relative_mse(feats[t], self.targets[t])
        return total
