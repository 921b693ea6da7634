"""A video frame by frame, without flicker: each frame is tied to the previous result, warped onto it by
the input's optical flow, on the pixels the flow can trust (Ruder et al. 2016). Three modes:

* ``apply``: a trained style network on each frame, blended with the warped previous result;
* ``stylize``: the first frame is a full style transfer; each later one starts from the warped previous
  result and optimizes a few steps with a temporal loss that holds the reliable pixels;
* ``dream``: the first frame is a full dream; each later one carries the warped dream detail onto
  the new frame and dreams a few steps more, as the zoom carries it by zooming.

A scene cut (most pixels untrusted) starts fresh. The frames stream: each is decoded and resized when
its turn comes, and once finished it is saved to a work folder beside the output (``OUT.frames/``, its
settings in ``run.json``) and handed to the encoder, which writes a temp file beside the output; only
the previous frame is held, so memory does not grow with the clip's length. Rerunning the same command
continues where it stopped (the saved frames are read back and encoded again). The video is renamed
into place only when whole, with the source's audio when both are MP4; an interrupted or failed run
leaves no output, only the work folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from ..animation import TEMP_PREFIX, TEMP_SUFFIX, AnimationWriter, check_animation_path
from ..errors import DreamstyleError, RunError, SettingError, UserError
from ..events import Child, Run, deferred_signals, guarded
from ..images import (
    _write_error,
    array_from_image,
    atomic_path,
    check_output_folder,
    header,
    image_from_array,
    load_image,
    refuse_output_over_inputs,
    save_image,
    tensor_from_array,
)
from ..motion.blend import steady_blend
from ..motion.flow import CUT_RELIABLE, flow, reliable, warp
from ..motion.frames import Frames, open_frames
from ..settings import (
    FRAME_ITERATIONS,
    TEMPORAL_DEFAULTS,
    ApplySettings,
    DreamSettings,
    StylizeSettings,
    VideoSettings,
    as_params,
)


class Framer(Protocol):
    """What a mode does to the frames: the first of a shot in full, every later one from the last result."""

    params: dict[str, Any]
    first_steps: int  # progress steps of a first frame
    next_steps: int  # and of each later one

    def first(self, photo: np.ndarray, events: Run) -> np.ndarray: ...

    def next(self, index: int, photo: np.ndarray, last: tuple[np.ndarray, np.ndarray], back: np.ndarray,
             mask: np.ndarray, events: Run) -> np.ndarray:
        """Frame ``index`` from ``last`` (the previous frame's input and result, not warped); ``back`` is
        this frame's flow to the last one and ``mask`` its reliable pixels."""


def _checked_framer(frames: Frames, s: VideoSettings, mode_settings: ApplySettings | StylizeSettings | DreamSettings,
                    weight: float, frame_steps: int, first_frame: Callable[[], Image.Image], events: Run) -> Framer:
    """The mode's framer, with the clip's memory checked before a frame is decoded: apply's network is
    loaded first (its size counts); stylize and dream prepare on the first frame and check their own."""
    if s.mode == "apply":
        framer = _framer(s, mode_settings, weight, frame_steps, first_frame, events)
        _check_memory(frames, getattr(framer, "bytes_per_pixel", 0.0))
        return framer
    _check_memory(frames)
    return _framer(s, mode_settings, weight, frame_steps, first_frame, events)


def video(source: str | os.PathLike, output: str | os.PathLike, s: VideoSettings,
          mode_settings: ApplySettings | StylizeSettings | DreamSettings, events: Run,
          keep_frames: bool = False, chunks: Callable[[Path, dict[str, Any]], None] | None = None) -> Path:
    """Every selected frame of ``source`` through the mode, into ``output`` (.mp4, .gif or a folder).

    The frames stream: each is decoded (and resized) when its turn comes, and once done it is saved to
    the work folder and handed to the encoder; only the previous frame is kept, so memory does not grow
    with the clip's length. ``chunks(work, params)`` (:mod:`.video_chunks`) first fills the work folder
    with frames made by other workers; this run then finds them saved and assembles them in order."""
    frames = open_frames(source, getattr(mode_settings, "size", None), s.start, s.end, s.every)
    out = check_video_output(output)
    refuse_output_over_inputs(out, [source, *(s.style_images or [])])
    weight = _temporal_weight(s)
    frame_steps = _frame_iterations(s)
    stream = iter(frames)
    head: list[Image.Image] = []

    def first_frame() -> Image.Image:
        if not head:
            head.append(next(stream))  # a video no decoder can read is refused here, before any work
        return head[0]

    framer = _checked_framer(frames, s, mode_settings, weight, frame_steps, first_frame, events)
    first_frame()
    params = {**header("video", source=str(source)),
              **as_params(s, temporal_weight=weight, frame_iterations=frame_steps), **framer.params,
              "frames": frames.count, "fps": float(frames.rate)}
    work = work_folder(out)
    _claim(work, params)
    events.expect(events.done + framer.first_steps + (frames.count - 1) * framer.next_steps)
    audio = (str(source), s.start, s.end) if frames.kind == "video" else None
    last: list[Image.Image] = []  # the last finished frame
    writers: list[_Output] = []

    def keep() -> tuple[Image.Image | None, Path | None]:
        # every finished frame is in the work folder; the output is there only if it was written whole
        return (last[0] if last else None), (writers[0].written if writers else None)

    try:
        with guarded(events, keep):
            if chunks is not None:
                chunks(work, params)
            writers.append(_output(out, work, float(frames.rate), params, audio))
            with writers[0] as writer:
                previous: tuple[np.ndarray, np.ndarray] | None = None  # (input, result) of the last frame
                for i, frame in enumerate(itertools.chain([head.pop()], stream)):
                    photo = array_from_image(frame)
                    del frame
                    label = Child(events, f"frame {i + 1}/{max(frames.count, i + 1)} ")
                    image = _frame(framer, i, photo, previous, weight, work / f"{i:06d}.png", params, events, label)
                    writer.add(image)
                    # the next frame builds on exactly what was saved, so a resumed run matches an unbroken one
                    previous = (photo, array_from_image(image))
                    last[:] = [image]
    except RunError as e:  # a full disk, a failed step: the finished frames are kept for the rerun
        raise RunError(f"{e} (the finished frames stay in '{_short(work)}'; the same command continues from "
                       "them)") from None
    result_path = writers[0].written or out
    if not keep_frames:
        shutil.rmtree(work, ignore_errors=True)
    events.finish(last[0], result_path, params)
    return result_path


def _frame(framer: Framer, i: int, photo: np.ndarray, previous: tuple[np.ndarray, np.ndarray] | None, weight: float,
           path: Path, params: dict[str, Any], events: Run, label: Run) -> Image.Image:
    """Frame ``i``: from the work folder if an earlier run of the same command saved it, else made (from
    the previous one where the flow holds, in full at the start of a shot) and saved there."""
    image = _saved(path, photo)
    if image is not None:
        events.done += framer.first_steps if previous is None else framer.next_steps
        return image
    result = None
    if previous is not None and weight > 0:
        back = flow(previous[0], photo)
        mask = reliable(previous[0], photo, back)
        if mask.mean() >= CUT_RELIABLE:
            result = framer.next(i, photo, previous, back, mask, label)
        else:  # a scene cut: this shot starts fresh
            events.total += framer.first_steps - framer.next_steps
        del back, mask
    if result is None:
        result = framer.first(photo, label)
    image = image_from_array(result)
    save_image(image, path, params)
    return image


def check_video_output(output: str | os.PathLike) -> Path:
    """An .mp4 or .gif file, or a folder (a name without an extension) that is new or empty."""
    p = Path(output)
    if p.suffix:
        return check_animation_path(p)
    check_output_folder(p)
    if p.exists() and (not p.is_dir() or any(p.iterdir())):
        raise UserError(f"output folder '{p}' already exists and is not empty; name a new folder, or an .mp4 or "
                        ".gif file")
    return p


def work_folder(out: Path) -> Path:
    """The folder beside ``out`` that holds its finished frames (``OUT.frames``, or with a long name, the
    name cut short and a hash of it, so that it fits the file system's limit on a name)."""
    return _beside(out, ".frames")


def _beside(out: Path, suffix: str) -> Path:
    name = out.name + suffix
    limit = _name_max(out.parent)
    if len(name.encode()) <= limit:
        return out.with_name(name)
    tail = "-" + hashlib.sha256(out.name.encode()).hexdigest()[:12] + suffix
    head = out.name.encode()[:max(1, limit - len(tail.encode()))].decode(errors="ignore")
    return out.with_name(head + tail)


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return 255


def _saved(path: Path, photo: np.ndarray) -> Image.Image | None:
    """The frame an earlier run saved at ``path``, or None if it is not there (or is not whole)."""
    if not path.is_file():
        return None
    try:
        image = load_image(path)
    except UserError:
        image = None
    if image is None or image.size != (photo.shape[1], photo.shape[0]):
        with contextlib.suppress(OSError):
            path.unlink()  # damaged, or not this clip's: made again
        return None
    return image


class _Output(Protocol):
    written: Path | None

    def add(self, frame: Image.Image) -> None: ...

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: Any) -> None: ...


def _output(out: Path, work: Path, fps: float, params: dict[str, Any],
            audio: tuple[str, float, float | None] | None) -> _Output:
    if out.suffix:
        return AnimationWriter(out, fps, params, audio if out.suffix.lower() == ".mp4" else None)
    return _FrameFolder(out, work)


class _FrameFolder:
    """A folder of numbered PNGs: at the end, the work folder's finished frames are linked (or copied)
    into a folder beside the output, which is renamed to it, so it appears whole."""

    def __init__(self, out: Path, work: Path) -> None:
        self.out, self.work, self.count = out, work, 0
        self.written: Path | None = None

    def add(self, frame: Image.Image) -> None:
        self.count += 1  # already saved in the work folder

    def __enter__(self) -> _FrameFolder:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: Any) -> None:
        if kind is not None:
            return
        staging = _beside(self.out, ".writing")
        with deferred_signals():
            try:
                shutil.rmtree(staging, ignore_errors=True)
                staging.mkdir()
                for i in range(self.count):
                    name = f"{i:06d}.png"
                    try:
                        os.link(self.work / name, staging / name)
                    except OSError:  # a file system without hard links
                        shutil.copy2(self.work / name, staging / name)
                with contextlib.suppress(OSError):
                    self.out.rmdir()  # an empty folder named as the output gives way
                os.replace(staging, self.out)
            except OSError as e:
                shutil.rmtree(staging, ignore_errors=True)
                raise _write_error(self.out, e) from None
        self.written = self.out


# --- the modes --------------------------------------------------------------------------------------

def _framer(s: VideoSettings, ms: Any, weight: float, frame_steps: int, first: Callable[[], Image.Image],
            events: Run) -> Framer:
    """The mode's Framer; ``first()`` decodes the first frame (stylize and dream prepare on it). In apply mode
    a painting (``--style``) stands for its fast style, fine-tuned first if it is not cached."""
    if s.mode == "stylize":
        if not s.style_images:
            raise SettingError("style_images", "is needed by --mode stylize: give the painting(s) to paint in")
        if ms.save_every:
            raise SettingError("save_every", "is for still images; a video keeps each finished frame in its work "
                               "folder (OUT.frames/) until the video is written")
        return _Stylize(ms, s.style_images, weight, frame_steps, first())
    if s.style_images and s.mode != "apply":
        raise SettingError("style_images", f"is for --mode stylize and apply; --mode {s.mode} does not use it")
    if s.mode == "dream":
        return _Dream(ms, weight, frame_steps, first())
    if s.frame_iterations is not None:
        raise SettingError("frame_iterations", "is for --mode stylize and --mode dream; apply runs the network once "
                           "per frame")
    from .apply import check_fast_style_settings, with_fast_style

    if s.style_images:  # the painting's fast style: every check first, then the fine-tune if it is new
        if len(s.style_images) != 1:
            raise SettingError("style_images", "takes one painting in --mode apply (its fast style); to blend "
                               "paintings use --mode stylize")
        ms = dataclasses.replace(ms, style_image=s.style_images[0])
    check_fast_style_settings(ms)
    if ms.style_image is not None:
        ms = with_fast_style(ms, events, 0)
    return _Apply(ms, weight)


# Peak memory of a video run ~ VIDEO_BASE_BYTES + per output pixel, the loop's buffers (the frame, the
# previous input and result, the flow both ways, the warp, the blend's bands, the encoders) and, in apply
# mode, the network's activations (fastnet.budget's estimate); plus the decoded source frame per source
# pixel. Apply mode on CPU peaked at 1,070 bytes an output pixel at 512-2048 px, of which the small
# network alone took 525 (onnxruntime); the loop's share is rounded up from the rest.
VIDEO_BASE_BYTES = 200 * 2**20
VIDEO_BYTES_PER_PIXEL = 600
SOURCE_BYTES_PER_PIXEL = 10


def _check_memory(frames: Frames, network_bytes_per_pixel: float = 0.0) -> None:
    """Refuse up front, in one line, a frame size whose buffers (and apply network) would not fit in the
    memory this process may still take (fastnet.budget: free RAM, the address-space and cgroup limits)."""
    import cv2  # noqa: F401 - the flow needs it anyway: loaded now, the address space it maps is counted

    from ..fastnet.budget import require

    w, h = frames.frame_size
    sw, sh = frames.source_size
    per = VIDEO_BYTES_PER_PIXEL + network_bytes_per_pixel
    source = SOURCE_BYTES_PER_PIXEL * sw * sh
    need = VIDEO_BASE_BYTES + per * w * h + source

    def fix(have: float) -> str:
        room = max(have - VIDEO_BASE_BYTES - source, 0.0) / (per * w * h)
        fitting = int(max(w, h) * math.sqrt(room) // 16 * 16)
        return f"use {{size}} {fitting} or less" if fitting >= 16 else "free some memory, or use a machine with more"

    require(need, "cpu", "size", f"of {w}x{h} px per frame for the video", fix)


def _temporal_weight(s: VideoSettings) -> float:
    weight = TEMPORAL_DEFAULTS[s.mode] if s.temporal_weight is None else s.temporal_weight
    if s.mode != "stylize" and weight >= 1:
        raise SettingError("temporal_weight", f"is the share of the previous frame kept in --mode {s.mode}; it must "
                           f"be below 1, got {weight:g}")
    return float(weight)


def _frame_iterations(s: VideoSettings) -> int:
    if s.mode == "apply":
        return 1
    return FRAME_ITERATIONS[s.mode] if s.frame_iterations is None else s.frame_iterations


class _Apply:
    """A trained network per frame; the result keeps ``weight`` of the warped previous one where reliable."""

    def __init__(self, ms: ApplySettings, weight: float) -> None:
        from .apply import load_styler

        self.settings, self.weight = ms, weight
        self.styler, meta = load_styler(ms.model, ms.device)
        self.bytes_per_pixel = _network_bytes_per_pixel(str(meta.get("arch")))
        self.params = {"style": meta.get("style"), **as_params(ms, model=meta.get("name", ms.model))}
        self.first_steps = self.next_steps = 1

    def first(self, photo: np.ndarray, events: Run) -> np.ndarray:
        from .apply import stylize_array

        out = stylize_array(self.styler, photo, self.settings.strength, self.settings.preserve_color)
        events.step("", 0.0)
        return out

    def next(self, index: int, photo: np.ndarray, last: tuple[np.ndarray, np.ndarray], back: np.ndarray,
             mask: np.ndarray, events: Run) -> np.ndarray:
        from .apply import stylize_array

        styled = stylize_array(self.styler, photo, self.settings.strength, self.settings.preserve_color)
        keep = self.weight * mask[..., None].astype(np.float32)
        out = steady_blend(styled, warp(last[1], back, sharp=True), keep)
        events.step("", 0.0, {"reliable": float(mask.mean())})
        return out


def _network_bytes_per_pixel(arch: str) -> float:
    """A style network's activations per pixel of one forward pass (fastnet.budget's estimate)."""
    from ..fastnet.budget import FORWARD_BYTES_PER_ELEMENT, STYLE_NET_ELEMENTS_PER_PIXEL

    elements = STYLE_NET_ELEMENTS_PER_PIXEL.get(arch, max(STYLE_NET_ELEMENTS_PER_PIXEL.values()))
    return FORWARD_BYTES_PER_ELEMENT * elements


class _Stylize:
    """Style transfer: the first frame in full (coarse to fine); each later one starts from the previous
    result warped by the flow (the new frame where the flow is unreliable) and takes ``frame_steps``
    steps at full size, with the temporal loss."""

    def __init__(self, ms: StylizeSettings, styles: list[str], weight: float, frame_steps: int,
                 first: Image.Image) -> None:
        from . import stylize

        self.weight, self.frame_steps = weight, frame_steps
        self.prepared = stylize.prepare(first, styles, ms)
        self.params = {k: v for k, v in self.prepared.params.items() if k not in ("dreamstyle", "command", "content")}
        self.first_steps, self.next_steps = sum(self.prepared.steps), frame_steps

    def first(self, photo: np.ndarray, events: Run) -> np.ndarray:
        from . import stylize

        return array_from_image(stylize.run(self.prepared, events, content=image_from_array(photo)))

    def next(self, index: int, photo: np.ndarray, last: tuple[np.ndarray, np.ndarray], back: np.ndarray,
             mask: np.ndarray, events: Run) -> np.ndarray:
        import torch

        from ..objectives import TemporalLoss
        from . import stylize

        p0 = self.prepared
        warped = np.clip(warp(last[1], back, sharp=True), 0, 1)
        target = tensor_from_array(warped, p0.device)
        trust = torch.from_numpy(mask.astype(np.float32))[None, None].to(p0.device)
        # the start: the warped result where the flow is reliable, the new frame where it is not (what was
        # hidden before, say, an arm raised: the warp would smear the old picture across it)
        start = np.where(mask[..., None], warped, photo)
        size = max(photo.shape[:2])
        return array_from_image(stylize.run(p0, events, content=image_from_array(photo), init=image_from_array(start),
                                            extra_terms=[(TemporalLoss(target, trust), self.weight)],
                                            schedule=([size], [self.frame_steps])))


class _Dream:
    """Deep Dream: the first frame in full (octaves); each later one is the new frame plus ``weight`` of the
    previous dream's detail, warped by the flow where it is reliable, dreamed ``frame_steps`` steps more."""

    def __init__(self, ms: DreamSettings, weight: float, frame_steps: int, first: Image.Image) -> None:
        from .dream import Dreamer

        self.settings, self.weight, self.frame_steps = ms, weight, frame_steps
        self.dreamer = Dreamer(ms)
        size = max(first.size)
        sizes = self.dreamer.sizes(size)
        self.dreamer.check_size(first, sizes)
        self.dreamer.check_memory(first, size, ms.tile)
        self.dreamer.fix_channels(first)
        self.params = {k: v for k, v in self.dreamer.params("", size).items()
                       if k not in ("dreamstyle", "command", "image")}
        self.loss = self.dreamer.loss_at(size)
        self.first_steps, self.next_steps = len(sizes) * ms.iterations, frame_steps

    def first(self, photo: np.ndarray, events: Run) -> np.ndarray:
        from .dream import dream

        return array_from_image(dream(image_from_array(photo), self.settings, events=events, dreamer=self.dreamer))

    def next(self, index: int, photo: np.ndarray, last: tuple[np.ndarray, np.ndarray], back: np.ndarray,
             mask: np.ndarray, events: Run) -> np.ndarray:
        import torch

        from ..images import to_image
        from .dream import recolor

        detail = warp(last[1] - last[0], back, sharp=True) * (self.weight * mask[..., None].astype(np.float32))
        start = tensor_from_array(np.clip(photo + detail, 0, 1), self.dreamer.device)
        generator = torch.Generator().manual_seed(self.settings.seed + index)  # the same jitter on a resumed run
        dreamed = self.dreamer.run(start, self.loss, self.frame_steps, generator, events, "")
        original = tensor_from_array(photo, dreamed.device)
        return array_from_image(to_image(recolor(dreamed, original, self.settings.preserve_color)))


def _claim(work: Path, params: dict[str, Any]) -> None:
    """Use ``work`` for this run's frames. Frames left there by a different command are not reused; a
    folder without a record of its run (a crash right after it was made) is taken over if it holds no
    frames. The record (``run.json``) is written atomically."""
    record = work / "run.json"
    wanted = {k: v for k, v in params.items() if k != "dreamstyle"}
    made = False
    if work.is_dir():
        for leftover in work.glob(TEMP_PREFIX + "*" + TEMP_SUFFIX):  # a write cut by a crash
            with contextlib.suppress(OSError):
                leftover.unlink()
        try:
            earlier = json.loads(record.read_text())
        except (OSError, ValueError):
            earlier = None
        if earlier is None and any(work.glob("*.png")):
            raise UserError(f"'{_short(work)}' holds frames but no readable record of the run that made them "
                            "(run.json); delete it, or write to another output")
        if earlier is not None:
            if earlier != wanted:
                raise UserError(f"'{_short(work)}' holds the frames of a different run; delete it, or write to "
                                "another output")
            return
    elif work.exists() or work.is_symlink():
        raise UserError(f"'{_short(work)}' is in the way of this run's work folder (it is not a folder); move it, "
                        "or write to another output")
    else:
        try:
            work.mkdir()
        except OSError as e:
            raise _write_error(work, e) from None
        made = True
    try:
        with atomic_path(record) as tmp:
            Path(tmp).write_text(json.dumps(wanted, sort_keys=True))
    except DreamstyleError:
        if made:
            with contextlib.suppress(OSError):
                work.rmdir()
        raise


def _short(p: Path, keep: int = 80) -> str:
    text = str(p)
    return text if len(text) <= keep else f"{text[:keep // 2]}...{text[-keep // 2:]}"
