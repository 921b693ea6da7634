"""Objectives: each term says which taps it reads, takes its targets once, and maps features to a loss.

All losses are normalized so that one set of default weights works across backbones and image sizes:
Gram matrices are divided by the number of positions, and each tap's squared error is divided by
the mean square of its target (a relative error).
"""

from typing import Any

from .base import Objective, Term
from .content import ContentLoss
from .style import StyleLoss, gram
from .temporal import TemporalLoss
from .tv import TVLoss

# Loss weights for these normalized losses, shared by stylize and train; a backbone may override them
# in its spec (``BackboneSpec.defaults``).
DEFAULTS: dict[str, Any] = {"content_weight": 1.0, "style_weight": 1e3, "tv_weight": 100.0, "iterations": 180,
                            "smooth": "none", "style_loss": "gram"}


def loss_defaults(spec: Any) -> dict[str, Any]:
    """The defaults above with the backbone's own overrides."""
    return {**DEFAULTS, **spec.defaults}


__all__ = ["Objective", "Term", "ContentLoss", "StyleLoss", "TVLoss", "TemporalLoss", "gram", "DEFAULTS",
           "loss_defaults"]
