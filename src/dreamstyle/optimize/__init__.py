"""The optimization loop (pixels against a loss callable), its optimizers and coarse-to-fine schedules."""

from .loop import OPTIMIZERS, Result, check_settings, make_optimizer, optimize_image
from .pyramid import pyramid_sizes, split_iterations

__all__ = ["OPTIMIZERS", "Result", "check_settings", "make_optimizer", "optimize_image", "pyramid_sizes",
           "split_iterations"]
