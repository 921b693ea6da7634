"""Objectives: each term says which taps it reads, takes its targets once, and maps features to a loss.

All losses are normalized so that one set of default weights works across backbones and image sizes:
Gram matrices are divided by the number of positions, and each tap's squared error is divided by
the mean square of its target (a relative error).

Importing the package is torch-free (the settings read its options and defaults); the terms import torch
when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..lazy import lazy_attributes
from .options import DREAM_OBJECTIVES, SMOOTHING, STYLE_LOSSES

if TYPE_CHECKING:
    from .base import Objective, Term
    from .content import ContentLoss
    from .palette import PaletteLoss
    from .style import StyleLoss, gram
    from .temporal import TemporalLoss
    from .tv import TVLoss

_lazy = lazy_attributes(__name__, {"Objective": "base", "Term": "base", "ContentLoss": "content",
                                   "PaletteLoss": "palette", "StyleLoss": "style", "gram": "style",
                                   "TemporalLoss": "temporal", "TVLoss": "tv"})


def __getattr__(name: str) -> Any:
    return _lazy(name)


# Loss weights for these normalized losses, shared by stylize and train, and the coarse-to-fine schedule
# (the smallest level's long side; steps per level ~ 1 / side ** level_power); a backbone may override them
# in its spec (``BackboneSpec.defaults``).
DEFAULTS: dict[str, Any] = {"content_weight": 1.0, "style_weight": 1e3, "tv_weight": 100.0, "iterations": 180,
                            "smooth": "none", "style_loss": "gram", "pyramid_start": 256, "level_power": 0.5}


def loss_defaults(spec: Any) -> dict[str, Any]:
    """The defaults above with the backbone's own overrides."""
    return {**DEFAULTS, **spec.defaults}


__all__ = ["Objective", "Term", "ContentLoss", "PaletteLoss", "StyleLoss", "TVLoss", "TemporalLoss", "gram", "DEFAULTS",
           "loss_defaults", "STYLE_LOSSES", "SMOOTHING", "DREAM_OBJECTIVES"]
