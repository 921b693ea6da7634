"""Style loss: statistics of the output's features against those of the style images.

Three statistics (``--style-loss``): ``gram`` (Gatys et al. 2015), ``meancov`` (the Wasserstein-2
distance between per-tap Gaussians, as in crowsonkb/style-transfer-pytorch) and ``meanstd``
(per-channel mean and standard deviation). Several styles blend by a weighted mean of their
statistics; with masks (Gatys et al. 2017 spatial control) each style instead matches only its
own region of the output, through guided (mask-weighted) statistics.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .base import EPS, Term, relative_mse
from .options import SMOOTHING, STYLE_LOSSES

# ``--smooth scale``: SWAG's simpler alternative, down-scaling the deep stages. Halving a tap's
# activations divides an (unnormalized) Gram loss on it by 2^4; the per-tap losses here are
# normalized, so the same effect is had by weighting the deep taps 1/16.
SCALE_WEIGHT = 1 / 16


class _Gram(torch.autograd.Function):
    """``X @ X.T`` for X of shape (N, C, P), with one matmul each way.

    Autograd through ``f @ f.transpose(1, 2)`` takes two matmuls in the backward pass (one per operand),
    and returns the gradient in (C, P) layout, which a channels-last feature map must copy and transpose
    back into its own. Here the backward is one matmul, ``(G' + G'^T) X``, written out in X's own memory
    layout: with VGG-19 at 512 px a whole step (network included) was 1.3x faster.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x @ x.transpose(1, 2)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        both = grad + grad.transpose(1, 2)
        if x.stride(-1) == 1:  # (C, P) rows in memory: the product comes out in that layout
            return both @ x
        return (x.transpose(1, 2) @ both).transpose(1, 2)  # positions outermost (channels last): (P, C) rows


def second_moment(f: torch.Tensor) -> torch.Tensor:
    """(N, C, P) -> (N, C, C): ``f @ f.T``, the sum over positions of x x^T (one matmul each way)."""
    return _Gram.apply(f)


def gram(feat: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, C), divided by the number of positions H * W."""
    n, c, h, w = feat.shape
    return second_moment(feat.reshape(n, c, h * w)) / (h * w)


def smooth(feat: torch.Tensor, mode: str) -> torch.Tensor:
    """SWAG (Wang, Li & Vasconcelos, CVPR 2021): a softmax over the positions of each channel tames the
    peaky activations of residual networks. Scaled by the number of positions so values stay near 1."""
    if mode != "softmax":
        return feat
    flat = feat.flatten(2)
    return (F.softmax(flat, dim=2) * flat.shape[2]).view_as(feat)


def _moments(feat: torch.Tensor, mask: torch.Tensor | None, mean: bool = True
             ) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Per batch item: weighted mean (N, C) and second moment E[x x^T] (N, C, C) over positions.

    ``mask`` is (1 or N, 1, H, W); each item's statistics are its own (batch and channels never mix).
    The weighted second moment is that of the features scaled by the weights' square roots. ``mean=False``
    skips the mean (the Gram statistic has none).
    """
    n, c = feat.shape[:2]
    f = feat.reshape(n, c, -1)
    if mask is None:
        return (f.mean(dim=2) if mean else None), second_moment(f) / f.shape[2]
    m = mask.reshape(mask.shape[0], -1)
    weights = (m / (m.sum(dim=1, keepdim=True) + EPS))[:, None, :]
    return ((f * weights).sum(dim=2) if mean else None), second_moment(f * weights.sqrt())


def _statistic(kind: str, feat: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    mean, second = _moments(feat, mask, mean=kind != "gram")
    if mean is None:
        return {"gram": second}
    cov = second - mean[:, :, None] * mean[:, None, :]
    if kind == "meanstd":
        return {"mean": mean, "std": cov.diagonal(dim1=1, dim2=2).clamp_min(0).add(EPS).sqrt()}
    return {"mean": mean, "cov": cov}


def _blend(stats: list[dict[str, torch.Tensor]], weights: list[float]) -> dict[str, torch.Tensor]:
    total = sum(weights)
    out = {}
    for k in stats[0]:
        blended = torch.zeros_like(stats[0][k])
        for w, s in zip(weights, stats):
            blended = blended + w / total * s[k]
        out[k] = blended
    return out


def _sqrtm(matrix: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(matrix)
    return vecs @ torch.diag_embed(vals.clamp_min(0).sqrt()) @ vecs.transpose(-1, -2)


def _sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over everything but the batch dimension."""
    return x.flatten(1).sum(dim=1)


def _trace(x: torch.Tensor) -> torch.Tensor:
    return x.diagonal(dim1=-2, dim2=-1).sum(dim=-1)


def _distance(kind: str, stat: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
              cache: dict[str, torch.Tensor]) -> torch.Tensor:
    """A scale-free distance per batch item, averaged over the batch: each is divided by the size of the
    target statistic. Targets have a batch of 1 (shared by every item) or of N (one per item)."""
    if kind == "gram":
        return relative_mse(stat["gram"], target["gram"])
    if kind == "meanstd":
        err = _sum((stat["mean"] - target["mean"]).pow(2)) + _sum((stat["std"] - target["std"]).pow(2))
        return (err / (_sum(target["mean"].pow(2)) + _sum(target["std"].pow(2)) + EPS)).mean()
    # Wasserstein-2 between Gaussians: |m1 - m2|^2 + tr(C1 + C2 - 2 (C2^1/2 C1 C2^1/2)^1/2)
    if "cov_sqrt" not in cache:
        cache["cov_sqrt"] = _sqrtm(target["cov"])
    root = cache["cov_sqrt"]
    product = root @ stat["cov"] @ root
    coupling = torch.linalg.eigvalsh((product + product.transpose(-1, -2)) / 2).clamp_min(EPS).sqrt().sum(dim=-1)
    w2 = _sum((stat["mean"] - target["mean"]).pow(2)) + _trace(stat["cov"]) + _trace(target["cov"]) - 2 * coupling
    return (w2.clamp_min(0) / (_sum(target["mean"].pow(2)) + _trace(target["cov"]) + EPS)).mean()


class StyleLoss(Term):
    """Matches the statistics (``kind``) of each tap to the blended statistics of the style images.

    ``masks``: optional list, one (1, 1, H, W) tensor in [0, 1] per style over the output; then
    each style is matched only inside its region (guided statistics), weighted by ``blend``.
    """

    name = "style"

    def __init__(self, taps: dict[str, float], style_feats: list[dict[str, torch.Tensor]],
                 blend: list[float] | None = None, kind: str = "gram",
                 masks: list[torch.Tensor] | None = None, smoothing: str = "none") -> None:
        if kind not in STYLE_LOSSES:
            raise ValueError(f"unknown style loss {kind!r}")
        if smoothing not in SMOOTHING:
            raise ValueError(f"unknown smoothing {smoothing!r}")
        super().__init__()
        self.kind = kind
        # SWAG smooths the deep taps, where residual networks peak; the shallow ones carry the texture.
        deep = set(list(taps)[-2:])
        self.smoothing = {t: smoothing if t in deep else "none" for t in taps}
        self.taps = {t: w * (SCALE_WEIGHT if self.smoothing[t] == "scale" else 1.0) for t, w in taps.items()}
        self.blend = list(blend or [1.0] * len(style_feats))
        self.bind(style_feats, masks)

    def bind(self, style_feats: list[dict[str, torch.Tensor]],
             masks: list[torch.Tensor] | None = None) -> None:
        """The paintings' statistics (and their masks over the output) at this size: the targets."""
        self.masks = masks
        stats = {t: [_statistic(self.kind, smooth(f[t], self.smoothing[t]).detach()) for f in style_feats]
                 for t in self.taps}
        if masks is None:
            self.targets = {t: [_blend(s, self.blend)] for t, s in stats.items()}
        else:
            self.targets = stats
        self._cache: dict[tuple[str, int], dict] = {}
        self._resized_masks: dict[tuple[int, ...], list[torch.Tensor | None]] = {}

    def _masks_at(self, feat: torch.Tensor) -> list[torch.Tensor | None]:
        """The masks at a tap's resolution, resized once per size rather than every step."""
        if self.masks is None:
            return [None]
        size = tuple(feat.shape[-2:])
        if size not in self._resized_masks:
            self._resized_masks[size] = [F.interpolate(m, size=size, mode="area") if m.shape[-2:] != size else m
                                         for m in self.masks]
        return self._resized_masks[size]

    def forward(self, feats: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        total: Any = 0.0
        weights = [1.0] if self.masks is None else [b / sum(self.blend) for b in self.blend]
        for tap, w in self.taps.items():
            feat = smooth(feats[tap], self.smoothing[tap])
            for i, (mask, target, share) in enumerate(zip(self._masks_at(feat), self.targets[tap], weights)):
                cache = self._cache.setdefault((tap, i), {})
                total = total + w * share * _distance(self.kind, _statistic(self.kind, feat, mask), target, cache)
        return total
