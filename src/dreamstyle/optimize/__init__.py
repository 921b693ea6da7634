"""The optimization loop (pixels against a loss callable), its optimizers and coarse-to-fine schedules.

Importing the package is torch-free (the settings read its options); the loop imports torch when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..lazy import lazy_attributes
from .options import INITS, OPTIMIZERS
from .pyramid import Levels, coarse_to_fine, octave_sizes, pyramid_sizes, split_iterations

if TYPE_CHECKING:
    from .loop import Result, check_settings, make_optimizer, optimize_image

_lazy = lazy_attributes(__name__, {name: "loop" for name in
                                   ("Result", "check_settings", "make_optimizer", "optimize_image")})


def __getattr__(name: str) -> Any:
    return _lazy(name)


__all__ = ["INITS", "OPTIMIZERS", "Levels", "Result", "check_settings", "coarse_to_fine", "make_optimizer",
           "octave_sizes", "optimize_image", "pyramid_sizes", "split_iterations"]
