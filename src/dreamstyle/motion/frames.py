"""Reading frames from a video file, an animated GIF or a folder of numbered images (PyAV, Pillow)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

from PIL import Image

from ..errors import UserError
from ..images import image_files, long_side_size

DEFAULT_FOLDER_FPS = Fraction(24)


def read_frames(source: str | os.PathLike, size: int | None = None, start: float = 0.0, end: float | None = None,
                every: int = 1) -> tuple[list[Image.Image], Fraction]:
    """The selected frames as RGB images (long side ``size`` if given) and the frame rate they keep.

    ``start``/``end`` are seconds; ``every`` keeps one frame in N (the rate is divided to match)."""
    p = Path(source)
    if not p.exists():
        raise UserError(f"video '{source}' does not exist")
    if p.is_dir():
        files = image_files(p)
        rate = DEFAULT_FOLDER_FPS
        frames = [_open(f) for i, f in enumerate(files) if start <= i / rate and (end is None or i / rate < end)]
    else:
        frames, rate = _decode(p, start, end)
    frames = frames[::every]
    if not frames:
        raise UserError(f"'{source}' has no frames in the selected range; check --start, --end and --every")
    if size is not None:
        frames = [f.resize(long_side_size(f, size), Image.Resampling.LANCZOS) for f in frames]
    return frames, rate / every


def _open(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except Exception as e:  # noqa: BLE001 - any unreadable frame file
        raise UserError(f"cannot read frame '{path}' ({type(e).__name__}); give a folder of images") from None


def _decode(path: Path, start: float, end: float | None) -> tuple[list[Image.Image], Fraction]:
    import av

    try:
        container = av.open(str(path))
    except Exception as e:  # noqa: BLE001 - PyAV's errors for files that are not videos
        raise UserError(f"'{path}' is not a video PyAV can read ({type(e).__name__}); give an MP4, MOV, WebM, "
                        "GIF or a folder of frames") from None
    with container:
        if not container.streams.video:
            raise UserError(f"'{path}' has no video stream")
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate or stream.guessed_rate or 24)
        frames: list[Image.Image] = []
        try:
            for i, frame in enumerate(container.decode(stream)):
                t = float(frame.time) if frame.time is not None else i / rate
                if t < start:
                    continue
                if end is not None and t >= end:
                    break
                frames.append(frame.to_image().convert("RGB"))
        except Exception as e:  # noqa: BLE001 - a codec PyAV cannot decode, a damaged stream
            if not frames:
                raise UserError(f"cannot decode the video in '{path}' ({type(e).__name__}: "
                                f"{str(e).splitlines()[0][:80] if str(e) else ''}); convert it to H.264 MP4 first") \
                    from None
    return frames, rate
