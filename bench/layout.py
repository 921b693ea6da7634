"""The layout measure: does a stylized picture keep the photo's layout (buildings, faces, horizon)?

For each image: its luminance, blurred by a Gaussian of radius (long side / 192), resized with LANCZOS
to a long side of 96 px (the output to the photo's small size); then scikit-image's
``structural_similarity`` of the two with ``data_range=1``. 1.0 is the same layout; two unrelated photos
score about 0.05. It ignores strokes; a much darker palette costs a little, so read it beside the pictures.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageFilter

SMALL = 96


def _small_luminance(img: Image.Image, size: tuple[int, int] | None = None) -> np.ndarray:
    lum = img.convert("RGB").convert("L")
    lum = lum.filter(ImageFilter.GaussianBlur(radius=max(lum.size) / 192))
    if size is None:
        w, h = lum.size
        scale = SMALL / max(w, h)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(lum.resize(size, Image.Resampling.LANCZOS), dtype=np.float64) / 255.0


def layout_similarity(photo: Image.Image | str | os.PathLike, output: Image.Image | str | os.PathLike) -> float:
    """SSIM of the blurred, 96-px luminance of ``photo`` and ``output`` (1 = the same layout)."""
    from skimage.metrics import structural_similarity

    a = photo if isinstance(photo, Image.Image) else Image.open(photo)
    b = output if isinstance(output, Image.Image) else Image.open(output)
    small_a = _small_luminance(a)
    small_b = _small_luminance(b, (small_a.shape[1], small_a.shape[0]))
    return float(structural_similarity(small_a, small_b, data_range=1.0))
