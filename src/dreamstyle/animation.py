"""Animations (the dream zoom, videos) written atomically as GIF (Pillow) or MP4 (H.264 through PyAV).

:class:`AnimationWriter` takes the frames one at a time and encodes each as it comes, into a temp file
beside the output; only a complete file is renamed into place, so an output is whole or absent, and
memory does not grow with the number of frames. :func:`save_animation` writes a list of frames.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from .errors import UserError, require
from .events import deferred_signals
from .images import _write_error, check_output_folder

ANIMATION_FORMATS = (".gif", ".mp4")
TEMP_PREFIX, TEMP_SUFFIX = ".ds-", ".tmp"  # as images.atomic_path names its temp files

# An audio track to copy into an MP4: the source file, and the seconds to take (start, end or None).
Audio = tuple[str, float, float | None]


def check_animation_path(path: str | os.PathLike) -> Path:
    """Check that an animation can be written at ``path``; call this before a long run."""
    p = Path(path)
    if p.suffix.lower() not in ANIMATION_FORMATS:
        raise UserError(f"cannot write the animation to '{p}': use a .gif or .mp4 file name")
    if p.suffix.lower() == ".mp4":
        require("av")
    return check_output_folder(p)


class AnimationWriter:
    """Frames into ``path`` (.gif or .mp4) one at a time. Each :meth:`add` encodes a frame into a temp
    file beside ``path``; :meth:`close` finishes it and renames it into place (durably), :meth:`abort`
    removes it. As a context manager it closes when the block ends normally and aborts on any error or
    Ctrl-C. A signal never cuts an encoder call half-way: it is raised when the call is done.

    An MP4 gets ``audio`` (a source file and the seconds to take from it) if given; frames whose size
    differs from the first's are resized to it."""

    def __init__(self, path: str | os.PathLike, fps: float, params: dict | None = None,
                 audio: Audio | None = None) -> None:
        self.path = check_animation_path(path)
        self.count = 0
        self.written: Path | None = None  # ``path`` once the whole file is there
        comment = json.dumps(params or {}, sort_keys=True)
        try:
            fd, self._tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=self.path.parent)
        except OSError as e:
            raise _write_error(self.path, e) from None
        os.close(fd)
        self._open: bool = True
        self._encoder: _Gif | _Mp4
        try:
            if self.path.suffix.lower() == ".gif":
                self._encoder = _Gif(open(self._tmp, "wb"), fps, comment)  # closed by finish or abort
            else:
                self._encoder = _Mp4(self._tmp, fps, comment, audio)
        except BaseException:
            self._remove()
            raise

    def add(self, frame: Image.Image) -> None:
        """Encode one more frame."""
        with deferred_signals():
            try:
                self._encoder.add(frame)
            except Exception as e:
                self.abort()
                if _write_failure(e):
                    raise _write_error(self.path, e) from None
                raise
        self.count += 1

    def close(self) -> Path:
        """Finish the file and put it at ``path``, whole; returns ``path``."""
        if not self.count:
            self.abort()
            raise ValueError("an animation needs at least one frame")
        with deferred_signals():
            try:
                self._encoder.finish()
                fd = os.open(self._tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.chmod(self._tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
                os.replace(self._tmp, self.path)
                self._open, self.written = False, self.path
            except Exception as e:
                self.abort()
                if _write_failure(e):
                    raise _write_error(self.path, e) from None
                raise
            with contextlib.suppress(OSError):  # make the rename itself durable (POSIX)
                dir_fd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        return self.path

    def abort(self) -> None:
        """Stop writing and remove the temp file; ``path`` is left as it was."""
        if self._open:
            with deferred_signals(swallow=True):
                self._encoder.abort()
                self._remove()

    def _remove(self) -> None:
        self._open = False
        with contextlib.suppress(OSError):
            os.unlink(self._tmp)

    def __enter__(self) -> AnimationWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def save_animation(frames: list[Image.Image], path: str | os.PathLike, fps: float, params: dict | None = None,
                   audio: Audio | None = None) -> Path:
    """Write ``frames`` to ``path`` (.gif or .mp4) through a temp file, so it is never half-written. An MP4
    gets ``audio`` (a source file and the seconds to take from it) if given. Ctrl-C and SIGTERM wait
    until the file is written (a list of frames takes moments to encode)."""
    with deferred_signals(), AnimationWriter(path, fps, params, audio) as writer:
        for frame in frames:
            writer.add(frame)
    return writer.path


def count_frames(path: str | os.PathLike) -> int:
    """How many frames an animation written by save_animation has."""
    p = Path(path)
    if p.suffix.lower() == ".gif":
        with Image.open(p) as im:
            return getattr(im, "n_frames", 1)
    import av

    with av.open(str(p)) as container:
        return sum(1 for _ in container.decode(video=0))


def _write_failure(e: BaseException) -> bool:
    """An error of the file or the encoder (a full disk, PyAV's own error types), not a bug."""
    return isinstance(e, (OSError, ValueError)) or type(e).__module__.split(".")[0] == "av"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --- GIF ------------------------------------------------------------------------------------------------

class _Gif:
    """An animated GIF written frame by frame. Each frame is quantized as Pillow saves a still GIF (its
    own adaptive palette), and its image block is copied into the animation with that palette as its
    local colour table (the first frame's is the global one)."""

    def __init__(self, file: BinaryIO, fps: float, comment: str) -> None:
        self.file, self.comment = file, comment.encode("utf-8")
        self.delay = int(round(1000 / fps) / 10)  # hundredths of a second, as Pillow writes a duration
        self.size: tuple[int, int] | None = None

    def add(self, frame: Image.Image) -> None:
        frame = frame.convert("RGB")
        if self.size is None:
            self.size = frame.size
        elif frame.size != self.size:
            frame = frame.resize(self.size, Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        frame.save(buffer, format="GIF")
        table, table_bits, descriptor, local, image = _gif_parts(buffer.getvalue())
        out = []
        if self.file.tell() == 0:
            out += [b"GIF89a", struct.pack("<HHBBB", *self.size, 0x80 | table_bits if table else 0, 0, 0), table,
                    b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"]  # loop forever
            if self.comment:
                out += [b"!\xfe", *_sub_blocks(self.comment), b"\x00"]
        elif table and not local:  # the still's global table becomes this frame's local one
            descriptor = descriptor[:9] + bytes([(descriptor[9] & 0x40) | 0x80 | table_bits])
            local = table
        out += [b"!\xf9\x04\x00" + struct.pack("<H", self.delay) + b"\x00\x00", descriptor, local, image]
        self.file.write(b"".join(out))

    def finish(self) -> None:
        self.file.write(b";")
        self.file.flush()
        self.file.close()

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()


def _sub_blocks(data: bytes) -> list[bytes]:
    return [bytes([len(data[i:i + 255])]) + data[i:i + 255] for i in range(0, len(data), 255)]


def _gif_parts(data: bytes) -> tuple[bytes, int, bytes, bytes, bytes]:
    """A still GIF's (global colour table, its size bits, image descriptor, local colour table, image data
    from the LZW code size to the block terminator)."""
    packed = data[10]
    pos, table, bits = 13, b"", packed & 7
    if packed & 0x80:
        table = data[pos:pos + 3 * (2 << bits)]
        pos += len(table)
    while data[pos] == 0x21:  # extensions: label, then sub-blocks up to a zero length
        pos += 2
        while data[pos]:
            pos += data[pos] + 1
        pos += 1
    if data[pos] != 0x2C:
        raise ValueError("Pillow wrote a GIF without an image block")
    descriptor = data[pos:pos + 10]
    pos += 10
    local = b""
    if descriptor[9] & 0x80:
        local = data[pos:pos + 3 * (2 << (descriptor[9] & 7))]
        pos += len(local)
    start = pos
    pos += 1  # the LZW minimum code size
    while data[pos]:
        pos += data[pos] + 1
    return table, bits, descriptor, local, data[start:pos + 1]


# --- MP4 ------------------------------------------------------------------------------------------------

class _Mp4:
    """H.264 (or MPEG-4 Part 2 where PyAV has no libx264) frame by frame, yuv420p, so even sizes: an odd
    side loses its last pixel row or column (a 1-px side is padded to 2)."""

    def __init__(self, path: str, fps: float, comment: str, audio: Audio | None) -> None:
        self.path, self.fps, self.comment, self.audio = path, fps, comment, audio
        self.stack = contextlib.ExitStack()
        self.container: Any = None
        self.stream: Any = None
        self.sound: Callable[[], None] | None = None
        self.size: tuple[int, int] | None = None

    def _start(self, size: tuple[int, int]) -> None:
        from fractions import Fraction

        import av

        self.size = size
        w, h = max(2, size[0] - size[0] % 2), max(2, size[1] - size[1] % 2)
        self.container = self.stack.enter_context(av.open(self.path, "w", format="mp4"))
        self.container.metadata["comment"] = self.comment
        stream = self.container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4",
                                           rate=Fraction(self.fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        self.stream = stream
        # every stream is added before the first packet is written (the header goes out then)
        if self.audio is not None:
            source = self.stack.enter_context(av.open(self.audio[0]))
            self.sound = _audio_track(self.container, source, self.audio[1], self.audio[2])

    def add(self, frame: Image.Image) -> None:
        import av

        frame = frame.convert("RGB")
        if self.size is None:
            self._start(frame.size)
        elif frame.size != self.size:
            frame = frame.resize(self.size, Image.Resampling.LANCZOS)
        w, h = self.stream.width, self.stream.height
        array = np.asarray(frame)
        if array.shape[0] < h or array.shape[1] < w:  # a 1-px side
            array = np.pad(array, ((0, max(0, h - array.shape[0])), (0, max(0, w - array.shape[1])), (0, 0)),
                           mode="edge")
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(array[:h, :w]), format="rgb24")
        for packet in self.stream.encode(picture):
            self.container.mux(packet)

    def finish(self) -> None:
        with self.stack:
            for packet in self.stream.encode():
                self.container.mux(packet)
            if self.sound is not None:
                self.sound()

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # the file is removed anyway
            self.stack.close()


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
