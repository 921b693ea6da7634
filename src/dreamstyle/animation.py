"""Animations (the dream zoom) written atomically as GIF (Pillow) or MP4 (H.264 through PyAV)."""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


# An audio track to copy into an MP4: the source file, and the seconds to take (start, end or None).
Audio = tuple[str, float, float | None]


def _write_mp4(frames: list[Image.Image], path: str, fps: float, comment: str, audio: Audio | None = None) -> None:
    from fractions import Fraction

    import av

    w, h = frames[0].size
    w, h = w - w % 2, h - h % 2  # yuv420p needs even sizes
    with contextlib.ExitStack() as stack:
        container = stack.enter_context(av.open(path, "w", format="mp4"))
        container.metadata["comment"] = comment
        stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4",
                                      rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        # every stream is added before the first packet is written (the header goes out then)
        sound = _audio_track(container, stack.enter_context(av.open(audio[0])), audio[1], audio[2]) \
            if audio is not None else None
        for frame in frames:
            array = np.asarray(frame.convert("RGB"))[:h, :w]
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if sound is not None:
            sound()


def _audio_track(container: Any, source: Any, start: float, end: float | None) -> Callable[[], None] | None:
    """Add the source's first audio track to ``container``; returns the function that copies its packets
    from ``start`` to ``end`` seconds as they are (no re-encoding). A track MP4 cannot hold is left out
    with a warning."""
    if not source.streams.audio:
        return None
    track = source.streams.audio[0]
    try:
        out = container.add_stream_from_template(track)
    except Exception as e:  # noqa: BLE001 - a codec MP4 cannot carry
        warnings.warn(f"the audio ({track.codec_context.name}) cannot go into an MP4 ({type(e).__name__}); "
                      "the video is silent", stacklevel=5)
        return None

    def copy() -> None:
        offset = None
        for packet in source.demux(track):
            if packet.pts is None or packet.dts is None:
                continue  # the demuxer's flush packet
            t = float(packet.pts * track.time_base)
            if t < start:
                continue
            if end is not None and t >= end:
                break
            if offset is None:
                offset = packet.dts
            packet.pts -= offset
            packet.dts -= offset
            packet.stream = out
            container.mux(packet)
    return copy


def save_animation(frames: list[Image.Image], path: str | os.PathLike, fps: float, params: dict | None = None,
                   audio: Audio | None = None) -> Path:
    """Write ``frames`` to ``path`` (.gif or .mp4) through a temp file, so it is never half-written. An MP4
    gets ``audio`` (a source file and the seconds to take from it) if given."""
    p = check_animation_path(path)
    comment = json.dumps(params or {}, sort_keys=True)
    with atomic_path(p) as tmp:
        if p.suffix.lower() == ".gif":
            _write_gif(frames, tmp, fps, comment)
        else:
            _write_mp4(frames, tmp, fps, comment, audio)
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
