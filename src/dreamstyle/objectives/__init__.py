"""Objectives: each term says which taps it reads, takes its targets once, and maps features to a loss.

All losses are normalized so that one set of default weights works across backbones and image sizes:
Gram matrices are divided by the number of positions, and each tap's squared error is divided by
the mean square of its target (a relative error).
"""

from .base import Objective, Term
from .content import ContentLoss
from .style import StyleLoss, gram
from .tv import TVLoss

__all__ = ["Objective", "Term", "ContentLoss", "StyleLoss", "TVLoss", "gram"]
