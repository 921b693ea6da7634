"""Deep Dream terms: make chosen taps (or channels of them) fire harder, or fire like a guide image.

A target is written ``TAP``, ``TAP:12,40`` (channels), ``TAP:strongest:8`` or ``TAP:weakest:8``
(the channels most or least active on the image being dreamed), each optionally with ``=WEIGHT``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from ..backbones.registry import get_spec
from ..errors import UserError
from .base import EPS, Term
from .options import DREAM_OBJECTIVES

SELECTIONS = ("strongest", "weakest")
_TARGET = re.compile(r"^(?P<tap>[^:=]+)(?::(?P<sel>[^=]*))?(?:=(?P<weight>[^=]+))?$")


@dataclass(frozen=True)
class DreamTarget:
    """A tap, which of its channels (None: all), and the target's weight."""

    tap: str
    channels: tuple[int, ...] | None = None
    select: tuple[str, int] | None = None  # ('strongest', 8): choose channels on the image itself
    weight: float = 1.0

    def __str__(self) -> str:
        sel = f":{self.select[0]}:{self.select[1]}" if self.select else \
            f":{','.join(map(str, self.channels))}" if self.channels else ""
        return f"{self.tap}{sel}={self.weight:g}"


def parse_target(text: str, option: str = "--target") -> DreamTarget:
    """``'blocks.8:strongest:4=2'`` -> DreamTarget('blocks.8', select=('strongest', 4), weight=2.0)."""
    how = (f"write TAP, TAP:12,40, TAP:strongest:8 or TAP:weakest:8, each optionally =WEIGHT "
           f"(e.g. {option} blocks.8:strongest:4=2)")
    m = _TARGET.match(text.strip())
    if not m:
        raise UserError(f"bad {option} '{text}': {how}")
    tap, sel, weight_text = m["tap"].strip(), m["sel"], m["weight"]
    weight = 1.0
    if weight_text is not None:
        try:
            weight = float(weight_text)
        except ValueError:
            raise UserError(f"bad weight '{weight_text}' in {option} '{text}': it must be a number") from None
        if not (weight == weight and abs(weight) != float("inf")) or weight < 0:  # NaN, inf, negative
            raise UserError(f"bad weight '{weight_text}' in {option} '{text}': it must be a number >= 0")
    if sel is None:
        return DreamTarget(tap, weight=weight)
    parts = [p.strip() for p in sel.split(":")]
    if parts[0] in SELECTIONS:
        if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) < 1:
            raise UserError(f"bad {option} '{text}': after '{parts[0]}' give how many channels, as in "
                            f"{tap}:{parts[0]}:8")
        return DreamTarget(tap, select=(parts[0], int(parts[1])), weight=weight)
    try:
        channels = tuple(int(c) for c in sel.split(","))
    except ValueError:
        raise UserError(f"bad channels '{sel}' in {option} '{text}': {how}") from None
    if not channels or min(channels) < 0:
        raise UserError(f"bad channels '{sel}' in {option} '{text}': channel numbers start at 0")
    return DreamTarget(tap, channels=channels, weight=weight)


def default_targets(model: str, avoid: Sequence[str] = ()) -> list[DreamTarget]:
    """The backbone's default dream tap, skipping taps in ``avoid`` (those the style and content losses use)."""
    spec = get_spec(model)
    for tap in spec.dream_taps:
        if tap not in avoid:
            return [DreamTarget(tap)]
    raise UserError(f"{model} has no default dream tap outside {', '.join(avoid)}; name one with --dream TAP=W")


def parse_targets(targets: Sequence[str | DreamTarget] | str | None, model: str, option: str = "targets",
                  avoid: Sequence[str] = ()) -> list[DreamTarget]:
    """Targets as text or DreamTarget; none (or 'auto' taps) means the backbone's default dream tap."""
    if targets is None:
        return default_targets(model, avoid)
    items = [targets] if isinstance(targets, (str, DreamTarget)) else list(targets)
    if not items or all(isinstance(t, str) and not t.strip() for t in items):
        raise UserError(f"{option} is empty; name a target such as blocks.8, or leave it out for the default")
    parsed = []
    for item in items:
        t = item if isinstance(item, DreamTarget) else parse_target(item, option)
        if t.tap == "auto":
            t = DreamTarget(default_targets(model, avoid)[0].tap, t.channels, t.select, t.weight)
        parsed.append(t)
    return parsed


def rank_channels(feat: torch.Tensor, how: str, count: int) -> tuple[int, ...]:
    """The ``count`` channels of ``feat`` (1, C, H, W) with the highest (or lowest) mean activation."""
    means = feat.detach().float().mean(dim=(0, 2, 3))
    order = torch.argsort(means, descending=how == "strongest")
    return tuple(int(c) for c in order[:min(count, len(order))])


def resolve_channels(targets: list[DreamTarget], feats: dict[str, torch.Tensor]) -> list[DreamTarget]:
    """Fix each target's channels: pick 'strongest'/'weakest' on ``feats`` and check the given ones exist."""
    fixed = []
    for t in targets:
        n = feats[t.tap].shape[1]
        if t.select is not None:
            t = replace(t, channels=rank_channels(feats[t.tap], *t.select), select=None)
        elif t.channels is not None and max(t.channels) >= n:
            raise UserError(f"tap '{t.tap}' has {n} channels (0-{n - 1}); channel {max(t.channels)} does not exist")
        fixed.append(t)
    return fixed


def activation(feat: torch.Tensor, channels: tuple[int, ...] | None, objective: str) -> torch.Tensor:
    """How strongly the channels fire: mean square (``l2``) or mean (``mean``) over channels and positions."""
    if channels is not None:
        feat = feat[:, list(channels)]
    return feat.pow(2).mean() if objective == "l2" else feat.mean()


def guide_match(feat: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
    """Guided dream: at each position, the dot product with the best-matching guide feature (mean over positions).

    Its gradient pulls every position toward the guide feature it already resembles most.
    """
    n, c = feat.shape[:2]
    x = feat.reshape(n, c, -1)  # (N, C, P): each batch item on its own
    g = guide.reshape(guide.shape[0], c, -1)[:1]  # (1, C, M): the guide's features
    with torch.no_grad():
        best = (x.transpose(1, 2) @ g).argmax(dim=2)  # (N, P): the best guide position for each position
    matched = g[0][:, best].permute(1, 0, 2)  # (N, C, P)
    return (x * matched).sum(dim=1).mean()


class DreamLoss(Term):
    """Minus the weighted activation of each target (so minimizing it dreams).

    ``reference``: activations of the same targets on a reference image (the content); each target
    is then measured relative to it, which makes the weights scale-free beside the other losses.
    ``guides``: guide-image features per tap; targets on those taps then follow the guide instead.
    """

    name = "dream"

    def __init__(self, targets: list[DreamTarget], objective: str = "l2",
                 reference: dict[str, torch.Tensor] | None = None,
                 guides: dict[str, torch.Tensor] | None = None) -> None:
        if objective not in DREAM_OBJECTIVES:  # the front ends check it up front, as a UserError
            raise ValueError(f"unknown dream objective {objective!r}")
        if any(t.select is not None for t in targets):
            raise ValueError("resolve 'strongest'/'weakest' channels first (resolve_channels)")
        super().__init__()
        self.targets, self.objective, self.guides = targets, objective, guides or {}
        self.taps = {t.tap: t.weight for t in targets}
        self.bind(reference)

    def bind(self, reference: dict[str, torch.Tensor] | None = None) -> None:
        """Measure each target relative to its activation on ``reference`` (None: absolute)."""
        self.scale = [1.0] * len(self.targets)
        if reference is not None:
            with torch.no_grad():
                self.scale = [1.0 / (self._measure(t, reference).abs().item() + EPS) for t in self.targets]

    def _measure(self, t: DreamTarget, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        feat = feats[t.tap]
        if t.tap in self.guides:
            guide = self.guides[t.tap]
            if t.channels is not None:
                feat, guide = feat[:, list(t.channels)], guide[:, list(t.channels)]
            return guide_match(feat, guide)
        return activation(feat, t.channels, self.objective)

    def forward(self, feats: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        total = image.new_zeros(())
        for t, s in zip(self.targets, self.scale):
            total = total - t.weight * s * self._measure(t, feats)
        return total
