"""Animations (the dream zoom) written atomically as GIF (Pillow) or MP4 (H.264 through PyAV)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import UserError
from .images import atomic_path, check_output_folder

ANIMATION_FORMATS = (".gif", ".mp4")


def check_animation_path(path: str | os.PathLike) -> Path:
    """Check that an animation can be written at ``path``; call this before a long run."""
    p = Path(path)
    if p.suffix.lower() not in ANIMATION_FORMATS:
        raise UserError(f"cannot write the animation to '{p}': use a .gif or .mp4 file name")
    return check_output_folder(p)


def _write_gif(frames: list[Image.Image], path: str, fps: float, comment: str) -> None:
    first, *rest = [f.convert("RGB") for f in frames]
    first.save(path, format="GIF", save_all=True, append_images=rest, duration=round(1000 / fps), loop=0,
               comment=comment.encode("utf-8"))


def _write_mp4(frames: list[Image.Image], path: str, fps: float, comment: str) -> None:
    from fractions import Fraction

    import av

    w, h = frames[0].size
    w, h = w - w % 2, h - h % 2  # yuv420p needs even sizes
    with av.open(path, "w", format="mp4") as container:
        container.metadata["comment"] = comment
        stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4",
                                      rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for frame in frames:
            array = np.asarray(frame.convert("RGB"))[:h, :w]
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def save_animation(frames: list[Image.Image], path: str | os.PathLike, fps: float, params: dict | None = None) -> Path:
    """Write ``frames`` to ``path`` (.gif or .mp4) through a temp file, so it is never half-written."""
    p = check_animation_path(path)
    writer = _write_gif if p.suffix.lower() == ".gif" else _write_mp4
    comment = json.dumps(params or {}, sort_keys=True)
    with atomic_path(p) as tmp:
        writer(frames, tmp, fps, comment)
    return p


def count_frames(path: str | os.PathLike) -> int:
    """How many frames an animation written by save_animation has."""
    p = Path(path)
    if p.suffix.lower() == ".gif":
        with Image.open(p) as im:
            return getattr(im, "n_frames", 1)
    import av

    with av.open(str(p)) as container:
        return sum(1 for _ in container.decode(video=0))
