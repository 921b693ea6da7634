"""Blending a frame with the previous result without washing out its texture.

Averaging two stylized frames whose brush strokes do not line up lowers the strokes' contrast: the
mean of unrelated textures is flatter than either. Kept up frame after frame, the style fades (on the
real clips the style distance to the painting tripled). :func:`steady_blend` blends, then gives each
band of detail (a Laplacian-like stack: about 1-2, 2-6 and 6-15 px) the energy it has in the current
frame. Where the textures do agree, the gains stay near 1; the blended, steady structure is kept.
"""

from __future__ import annotations

import numpy as np

# Gaussian blurs (sigma, px) that split the detail into bands.
BANDS = (1.0, 2.5, 6.0)


def steady_blend(current: np.ndarray, previous: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``keep`` (H, W, 1 in [0, 1]) of ``previous`` and the rest of ``current`` (H, W, 3 floats), with each
    detail band rescaled to ``current``'s energy in it."""
    import cv2

    mixed = (keep * previous + (1 - keep) * current).astype(np.float32)
    out_low, cur_low = mixed, np.asarray(current, dtype=np.float32)
    detail = np.zeros_like(mixed)
    for sigma in BANDS:
        mixed_next = np.asarray(cv2.GaussianBlur(out_low, (0, 0), sigma), dtype=np.float32)
        cur_next = np.asarray(cv2.GaussianBlur(cur_low, (0, 0), sigma), dtype=np.float32)
        band, wanted = out_low - mixed_next, cur_low - cur_next
        energy = float((band ** 2).mean())
        gain = float(np.sqrt(float((wanted ** 2).mean()) / energy)) if energy > 1e-12 else 1.0
        detail += (band * gain).astype(np.float32)
        out_low, cur_low = mixed_next, cur_next
    return np.clip(out_low + detail, 0.0, 1.0)
