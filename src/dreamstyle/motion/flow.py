"""Optical flow between frames, warping, the forward-backward consistency mask, and the warping error.

Flow comes from OpenCV's DIS (dense inverse search), computed on the fly. ``flow(a, b)`` gives, for
each pixel of ``b``, where it was in ``a``; ``warp(image_a, flow(a, b))`` moves ``a``'s picture onto
``b``. A pixel is reliable when following the flow from ``b`` to ``a`` and back lands where it
started (Sundaram et al. 2010, as Ruder et al. 2016 use it); occlusions and motion boundaries fail.
"""

from __future__ import annotations

import numpy as np

# A scene cut: fewer than this share of the pixels can be followed from the last frame.
CUT_RELIABLE = 0.4


def _gray(image: np.ndarray) -> np.ndarray:
    import cv2

    rgb = np.asarray(image)
    if rgb.dtype != np.uint8:
        rgb = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(H, W, 2) float32: for each pixel of ``b``, the offset (dx, dy) to where it is in ``a``."""
    import cv2

    dis = getattr(cv2, "DISOpticalFlow_create")(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # noqa: B009 (not in every stub)
    return dis.calc(_gray(b), _gray(a), None)


def warp(image: np.ndarray, offsets: np.ndarray, sharp: bool = False) -> np.ndarray:
    """``image`` (of frame a) moved onto frame b, given ``offsets = flow(a, b)``; edges are replicated.
    Bilinear, or with ``sharp`` bicubic, which blurs less when a result is warped again and again."""
    import cv2

    h, w = offsets.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(np.asarray(image, dtype=np.float32), xs + offsets[..., 0], ys + offsets[..., 1],
                     interpolation=cv2.INTER_CUBIC if sharp else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def reliable(a: np.ndarray, b: np.ndarray, back: np.ndarray | None = None) -> np.ndarray:
    """(H, W) bool: the pixels of ``b`` whose way back to ``a`` the flow can trust."""
    back = flow(a, b) if back is None else back  # b -> a
    forth = flow(b, a)  # a -> b
    forth_at = warp(forth, back)  # the a -> b flow, read where each b pixel came from
    total = back + forth_at  # zero when the round trip returns home
    magnitude = (back ** 2).sum(-1) + (forth_at ** 2).sum(-1)
    return (total ** 2).sum(-1) <= 0.01 * magnitude + 0.5


def warping_error(outputs: list[np.ndarray], inputs: list[np.ndarray]) -> float:
    """Lai et al. 2018: each output frame against the previous output warped by the input's flow, mean
    squared over the reliable pixels, averaged over the clip (values in [0, 1] per channel)."""
    errors = []
    h = min(np.asarray(x).shape[0] for x in (*outputs, *inputs))
    w = min(np.asarray(x).shape[1] for x in (*outputs, *inputs))
    outputs = [np.asarray(x)[:h, :w] for x in outputs]  # a video encoder may have cropped odd sizes to even
    inputs = [np.asarray(x)[:h, :w] for x in inputs]
    for t in range(1, len(outputs)):
        back = flow(inputs[t - 1], inputs[t])
        mask = reliable(inputs[t - 1], inputs[t], back)
        if mask.mean() < CUT_RELIABLE:  # a scene cut: nothing to compare
            continue
        warped = warp(_unit(outputs[t - 1]), back)
        diff = ((_unit(outputs[t]) - warped) ** 2).mean(-1)
        errors.append(float(diff[mask].mean()))
    return float(np.mean(errors)) if errors else 0.0


def _unit(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    return a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
