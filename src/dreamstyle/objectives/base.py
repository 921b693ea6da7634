"""The shape every objective term has, and their weighted sum."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

EPS = 1e-8


def relative_mse(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error divided by the target's mean square: scale-free, about 1 for a bad guess.

    Per batch item, then averaged: a batch of N gives the mean of N single-image losses. ``target`` has
    a batch of 1 (shared) or of N (one per item).
    """
    dims = tuple(range(1, x.dim()))
    if not dims:
        return (x - target).pow(2) / (target.pow(2) + EPS)
    return ((x - target).pow(2).mean(dim=dims) / (target.pow(2).mean(dim=dims) + EPS)).mean()


class Term(nn.Module):
    """A loss term, as a module: ``term(features, image)`` is its loss. ``taps`` maps the tap names it reads to
    their weights (empty if it reads pixels). ``bind(...)`` re-binds its targets (the content's features
    for another photo or batch, the paintings' at another pyramid level) without rebuilding it.

    Terms work on batches: (N, C, H, W) features give the mean of the N items' losses.
    """

    name: str = "term"
    taps: dict[str, float] = {}

    def bind(self, *targets: Any, **options: Any) -> None:
        """Re-bind the targets; a term without targets (total variation) has nothing to bind."""

    def forward(self, feats: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Objective:
    """A weighted sum of terms; returns the total and each weighted part, for progress and logs."""

    def __init__(self, terms: list[tuple[Term, float]]) -> None:
        self.terms = [(t, w) for t, w in terms if w > 0]

    def __call__(self, feats: dict[str, torch.Tensor], image: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        total = image.new_zeros(())
        parts = {}
        for term, weight in self.terms:
            value = weight * term(feats, image)
            parts[term.name] = float(value.detach())
            total = total + value
        return total, parts
