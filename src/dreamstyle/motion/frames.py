"""Reading frames from a video file, an animated GIF, an image or a folder of numbered images (PyAV, Pillow).

:func:`open_frames` checks the source and counts the selected frames without decoding them (a video's
packets are only demuxed); iterating the :class:`Frames` it returns decodes them one at a time, skips
the unselected ones before converting them, and resizes each as it comes, so memory does not grow with
the clip's length.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import UserError
from ..images import IMAGE_SUFFIXES, check_input_file, image_files, load_image, long_side_size

DEFAULT_FOLDER_FPS = Fraction(24)
# Image files read as a one-frame clip through Pillow's checks (an animated GIF goes to PyAV).
_STILL_SUFFIXES = IMAGE_SUFFIXES - {".gif"}


@dataclass(frozen=True)
class Frames:
    """The selected frames of a source; iterate for RGB images (long side ``size`` if given), decoded
    one at a time. ``count`` is how many there are (counted from the video's packets, without decoding),
    ``rate`` the frame rate they keep, ``source_size`` a frame's (width, height) before resizing."""

    source: Path
    kind: str  # "video", "folder" or "image"
    count: int
    rate: Fraction
    source_size: tuple[int, int]
    size: int | None
    start: float
    end: float | None
    every: int
    files: tuple[Path, ...] = ()  # a folder's selected files, or the one image

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) of the frames the iteration gives."""
        w, h = self.source_size
        if self.size is None:
            return w, h
        s = self.size  # as images.long_side_size makes it
        return (s, max(1, round(h * s / w))) if w >= h else (max(1, round(w * s / h)), s)

    def __iter__(self) -> Iterator[Image.Image]:
        if self.kind == "video":
            yield from self._decode()
            return
        for f in self.files:
            yield self._resized(load_image(f))

    def _resized(self, image: Image.Image) -> Image.Image:
        if self.size is None:
            return image
        return image.resize(long_side_size(image, self.size), Image.Resampling.LANCZOS)

    def _decode(self) -> Iterator[Image.Image]:
        container = _open_video(self.source)
        with container:
            stream = container.streams.video[0]
            rate = _rate(stream)
            kept = taken = 0
            frames = container.decode(stream)
            i = 0
            while True:
                try:
                    frame = next(frames)
                except StopIteration:
                    return
                except Exception as e:  # noqa: BLE001 - a codec PyAV cannot decode, a damaged stream
                    if not kept:
                        raise _decode_error(self.source, e) from None
                    return  # a damaged tail: the frames before it are the clip
                t = float(frame.time) if frame.time is not None else i / rate
                i += 1
                if t < self.start:
                    continue
                if self.end is not None and t >= self.end:
                    return
                taken += 1
                if (taken - 1) % self.every:
                    continue
                kept += 1
                image = self._resized(frame.to_image().convert("RGB"))
                del frame  # the decoded frame is not held while the image is worked on
                yield image


def read_frames(source: str | os.PathLike, size: int | None = None, start: float = 0.0, end: float | None = None,
                every: int = 1) -> tuple[list[Image.Image], Fraction]:
    """All the selected frames in a list, and their frame rate: for short clips (tests, benchmarks); a
    long one should be iterated through :func:`open_frames`."""
    frames = open_frames(source, size, start, end, every)
    return list(frames), frames.rate


def open_frames(source: str | os.PathLike, size: int | None = None, start: float = 0.0, end: float | None = None,
                every: int = 1) -> Frames:
    """The selected frames of ``source`` (a video file, an animated GIF, an image, or a folder of numbered
    images), checked and counted but not yet decoded. ``start``/``end`` are seconds; ``every`` keeps one
    frame in N (the rate is divided to match). Bad input is a one-line UserError."""
    p = Path(source)
    if _is_folder(p):
        return _folder(p, size, start, end, every)
    check_input_file(p, "a video file")
    if not os.access(p, os.R_OK):
        raise UserError(f"cannot read '{_short(p)}': permission denied; check the file's permissions")
    if p.suffix.lower() in _STILL_SUFFIXES:
        image = load_image(p)  # refuses a truncated or damaged image as stylize does
        count = 1 if start <= 0 and (end is None or end > 0) else 0
        if not count:
            raise _empty(p)
        return Frames(p, "image", 1, DEFAULT_FOLDER_FPS / every, image.size, size, start, end, every, (p,))
    container = _open_video(p)
    with container:
        stream = container.streams.video[0]
        rate = _rate(stream)
        if stream.codec_context is None:
            raise UserError(f"cannot decode the video in '{_short(p)}' (PyAV has no decoder for its codec); convert "
                            "it to H.264 MP4 first")
        width, height = stream.codec_context.width, stream.codec_context.height
        count = _count_packets(container, stream, rate, start, end)
    count = math.ceil(count / every)
    if not count:
        raise _empty(p)
    if not width or not height:
        raise UserError(f"'{_short(p)}' has a video stream without a frame size; convert it to H.264 MP4 first")
    return Frames(p, "video", count, rate / every, (width, height), size, start, end, every)


def _is_folder(p: Path) -> bool:
    try:
        return stat.S_ISDIR(os.stat(p).st_mode)
    except OSError:  # missing, a too-long name, ...: check_input_file says which
        return False


def _folder(p: Path, size: int | None, start: float, end: float | None, every: int) -> Frames:
    files = image_files(p)
    rate = DEFAULT_FOLDER_FPS
    chosen = [f for i, f in enumerate(files) if start <= i / rate and (end is None or i / rate < end)][::every]
    if not files:
        raise UserError(f"'{_short(p)}' has no frames: the folder holds no image files (PNG, JPEG, ...); give a "
                        "video file or a folder of numbered images")
    if not chosen:
        raise _empty(p)
    with Image.open(check_input_file(chosen[0])) as first:
        source_size = first.size
    return Frames(p, "folder", len(chosen), rate / every, source_size, size, start, end, every, tuple(chosen))


def _rate(stream: Any) -> Fraction:
    return Fraction(stream.average_rate or stream.guessed_rate or 24)


def _count_packets(container: Any, stream: Any, rate: Fraction, start: float, end: float | None) -> int:
    """How many frames fall in [start, end): one per packet with data, timed as the decoder times them."""
    count = i = 0
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # the demuxer's flush packet
            t = float(packet.pts * stream.time_base) if packet.pts is not None else i / rate
            i += 1
            if t >= start and (end is None or t < end):
                count += 1
    except Exception:  # noqa: BLE001 - a damaged container: count what could be read
        pass
    return count


def _open_video(path: Path) -> Any:
    import av

    try:
        container = av.open(str(path))
    except PermissionError:
        raise UserError(f"cannot read '{_short(path)}': permission denied; check the file's permissions") from None
    except Exception as e:  # noqa: BLE001 - PyAV's errors for files that are not videos
        raise UserError(f"'{_short(path)}' is not a video PyAV can read ({type(e).__name__}); give an MP4, MOV, "
                        "WebM, GIF or a folder of frames") from None
    if not container.streams.video:
        container.close()
        raise UserError(f"'{_short(path)}' has no video stream")
    return container


def _decode_error(path: Path, e: BaseException) -> UserError:
    first = str(e).splitlines()[0][:80] if str(e) else ""
    return UserError(f"cannot decode the video in '{_short(path)}' ({type(e).__name__}: {first}); convert it to "
                     "H.264 MP4 first")


def _empty(p: Path) -> UserError:
    return UserError(f"'{_short(p)}' has no frames in the selected range; check --start, --end and --every")


def _short(p: Path, keep: int = 80) -> str:
    text = str(p)
    return text if len(text) <= keep else f"{text[:keep // 2]}...{text[-keep // 2:]}"
