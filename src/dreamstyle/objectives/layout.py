"""Self-similarity content loss (STROTSS: Kolkin, Salavon & Shakhnarovich, CVPR 2019).

Instead of asking the output's features to equal the photo's, it asks them to relate to each other as
the photo's do: for a fixed sample of positions, the matrix of pairwise cosine distances between feature
vectors (each column divided by its sum) must match the photo's, by L1. What is alike in the photo stays
alike, and what differs stays different, so the layout holds, while every feature is free to take the
painting's colours and textures: a global change of colour or texture that keeps the relations costs
nothing. That is what lets a dark or muted painting's palette through without losing the buildings.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import EPS, Term

# Positions sampled per tap: the matrix is SAMPLES x SAMPLES, so this bounds the cost (about 1M entries).
SAMPLES = 1024


def _positions(h: int, w: int, samples: int, device: torch.device) -> torch.Tensor:
    """A fixed, evenly spread sample of at most ``samples`` flat positions of an h x w map (all if fewer)."""
    n = h * w
    if n <= samples:
        return torch.arange(n, device=device)
    # a deterministic low-discrepancy pick: the same positions every step, so L-BFGS sees one objective
    idx = torch.linspace(0, n - 1, samples, device=device).round().long()
    return idx.unique()


def distance_matrix(feat: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) features at flat positions ``idx`` -> (N, S, S) cosine distances, columns summing to 1."""
    f = feat.flatten(2)[:, :, idx]  # N, C, S
    f = F.normalize(f - f.mean(dim=2, keepdim=True), dim=1, eps=EPS)
    d = (1 - f.transpose(1, 2) @ f).clamp_min(0)
    return d / (d.sum(dim=1, keepdim=True) + EPS)


class SelfSimilarityLoss(Term):
    """Matches the output's self-similarity to the photo's at each tap (``taps`` maps tap to weight).

    The loss is the mean absolute difference of the normalized distance matrices times their side, so a
    matrix of unrelated (random) structure scores about 0.3. Targets re-bind like ContentLoss's.
    """

    name = "content"

    def __init__(self, taps: dict[str, float], target_feats: dict[str, torch.Tensor],
                 samples: int = SAMPLES) -> None:
        super().__init__()
        self.taps = dict(taps)
        self.samples = samples
        self.bind(target_feats)

    def bind(self, target_feats: dict[str, torch.Tensor]) -> None:
        self.idx: dict[str, torch.Tensor] = {}
        self.targets: dict[str, torch.Tensor] = {}
        for tap in self.taps:
            feat = target_feats[tap].detach().float()
            h, w = feat.shape[-2:]
            self.idx[tap] = _positions(h, w, self.samples, feat.device)
            self.targets[tap] = distance_matrix(feat, self.idx[tap])

    def forward(self, feats: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        total = image.new_zeros(())
        for tap, w in self.taps.items():
            d = distance_matrix(feats[tap].float(), self.idx[tap])
            total = total + w * (d - self.targets[tap]).abs().mean() * d.shape[-1]
        return total
