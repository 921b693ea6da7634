"""Deep Dream's gradient ascent: normalized steps, random jitter, Laplacian-smoothed gradients, tiles.

Unlike ``loop.optimize_image`` (a minimizer with L-BFGS/Adam), Deep Dream takes plain steps of a
fixed size along a normalized gradient, as the original does: that step rule is an optimizer of its own
(``NormalizedAscent``), run by the same loop (``loop.descend``). Large images are processed in tiles,
under a random roll each step so that tile borders never stay in one place (no seams), which also
bounds memory by the tile size.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .loop import descend

ScoreFn = Callable[[torch.Tensor], torch.Tensor]  # image tile (1, 3, h, w) -> scalar to maximize
StepFn = Callable[[int, float], None]


def laplacian_normalize(grad: torch.Tensor, levels: int = 4) -> torch.Tensor:
    """Split ``grad`` into a Laplacian pyramid, scale each band to unit std, and merge (the TF Deep Dream trick).

    Low frequencies get as much say as high ones, so the dream grows shapes, not just pixel noise.
    """
    bands = []
    current = grad
    for _ in range(levels - 1):
        if min(current.shape[-2:]) < 4:
            break
        low = F.avg_pool2d(current, 2, ceil_mode=True)
        up = F.interpolate(low, size=current.shape[-2:], mode="bilinear", align_corners=False)
        bands.append(current - up)
        current = low
    bands.append(current)
    merged = bands[-1] / (bands[-1].std() + 1e-8)
    for band in reversed(bands[:-1]):
        merged = F.interpolate(merged, size=band.shape[-2:], mode="bilinear", align_corners=False)
        merged = merged + band / (band.std() + 1e-8)
    return merged


def tile_boxes(height: int, width: int, tile: int) -> list[tuple[int, int, int, int]]:
    """(top, left, bottom, right) boxes of at most ``tile`` px covering the image; edge tiles are not slivers."""
    def cuts(n: int) -> list[int]:
        count = max(1, -(-n // tile))
        return [round(i * n / count) for i in range(count + 1)]

    ys, xs = cuts(height), cuts(width)
    return [(ys[i], xs[j], ys[i + 1], xs[j + 1]) for i in range(len(ys) - 1) for j in range(len(xs) - 1)]


def tiled_gradient(image: torch.Tensor, score_fn: ScoreFn, tile: int) -> tuple[torch.Tensor, float]:
    """Gradient of the score over the image, one tile at a time (each tile seen by the network alone)."""
    grad = torch.zeros_like(image)
    total = 0.0
    for top, left, bottom, right in tile_boxes(image.shape[-2], image.shape[-1], tile):
        part = image[..., top:bottom, left:right].detach().requires_grad_(True)
        score = score_fn(part)
        (g,) = torch.autograd.grad(score, part)
        grad[..., top:bottom, left:right] = g
        total += float(score.detach()) * part[0, 0].numel() / image[0, 0].numel()
    return grad, total


class NormalizedAscent(torch.optim.Optimizer):
    """Deep Dream's step rule: smooth the gradient across scales (``laplacian`` levels; 0 or 1 for none), then
    move every pixel up by ``step_size`` times the gradient over its mean magnitude, and clamp to [0, 1]."""

    def __init__(self, params: list[torch.Tensor], step_size: float = 0.01, laplacian: int = 4) -> None:
        super().__init__(params, {"step_size": step_size, "laplacian": laplacian})

    @torch.no_grad()
    def step(self, closure: Callable[[], object] | None = None) -> None:  # type: ignore[override]
        if closure is not None:
            with torch.enable_grad():
                closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["laplacian"] > 1:
                    grad = laplacian_normalize(grad, group["laplacian"])
                # the step's result takes the image's place, memory layout and all (so the network sees the
                # tensor it always has: the outputs stay bit-identical to the ascent before this optimizer)
                p.set_((p + group["step_size"] * grad / (grad.abs().mean() + 1e-8)).clamp(0, 1))


DREAM_FIX = "lower --step-size or the targets' weights (with --precision bf16/fp16, also try fp32)"


def ascend(image: torch.Tensor, score_fn: ScoreFn, steps: int, step_size: float = 0.01, jitter: int = 32,
           tile: int = 512, laplacian: int = 4, generator: torch.Generator | None = None,
           on_step: StepFn | None = None, watch: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
    """Take ``steps`` normalized gradient-ascent steps on ``image`` (1, 3, H, W in [0, 1]); returns the new image.

    Each step rolls the image by a random offset (up to ``jitter`` px but at most 1/16 of the image
    side, or up to a whole tile when the image is tiled), takes the gradient, rolls it back, and lets
    ``NormalizedAscent`` take the step. ``watch`` is given the image being changed, once, before the steps
    (a preview renders it when asked).
    """
    image = image.detach().clone()
    if watch is not None:
        watch(image)
    h, w = image.shape[-2:]
    tiled = max(h, w) > tile
    reach = tile if tiled else min(jitter, min(h, w) // 16)  # small images get a smaller jitter

    def evaluate() -> tuple[float, dict[str, float]]:
        dy, dx = (torch.randint(-reach, reach + 1, (2,), generator=generator).tolist() if reach > 0 else (0, 0))
        rolled = torch.roll(image, shifts=(dy, dx), dims=(-2, -1))
        grad, score = tiled_gradient(rolled, score_fn, tile)
        image.grad = torch.roll(grad, shifts=(-dy, -dx), dims=(-2, -1))
        return score, {}

    report = None if on_step is None else (lambda step, score, parts: on_step(step, score))
    descend(NormalizedAscent([image], step_size, laplacian), evaluate, range(1, steps + 1), report, DREAM_FIX)
    return image
