"""Colour: YIQ luminance, colour matching of a painting to a photo, and the OkLab palette start.

Importing the package is torch-free (the settings read its options); the transfers import torch when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..lazy import lazy_attributes
from .options import PRESERVE_COLOR, RGB_TO_YIQ

if TYPE_CHECKING:
    from .transfer import (
        combine_luminance,
        luminance_rgb,
        match_color,
        match_luminance,
        match_palette,
        oklab_to_rgb,
        rgb_to_oklab,
        rgb_to_yiq,
        yiq_to_rgb,
    )

_TRANSFERS = ("rgb_to_yiq", "yiq_to_rgb", "luminance_rgb", "match_luminance", "combine_luminance", "match_color",
              "rgb_to_oklab", "oklab_to_rgb", "match_palette")
_lazy = lazy_attributes(__name__, dict.fromkeys(_TRANSFERS, "transfer"))


def __getattr__(name: str) -> Any:
    return _lazy(name)


__all__ = ["PRESERVE_COLOR", "RGB_TO_YIQ", "rgb_to_yiq", "yiq_to_rgb", "luminance_rgb", "match_luminance",
           "combine_luminance", "match_color", "rgb_to_oklab", "oklab_to_rgb", "match_palette"]
