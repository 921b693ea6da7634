"""A video frame by frame, without flicker: each frame is tied to the previous result, warped onto it by
the input's optical flow, on the pixels the flow can trust (Ruder et al. 2016). Three modes:

* ``apply``: a trained style network on each frame, blended with the warped previous result;
* ``stylize``: the first frame is a full style transfer; each later one starts from the warped previous
  result and optimizes a few steps with a temporal loss that holds the reliable pixels;
* ``dream``: the first frame is a full dream; each later one carries the warped dream detail onto
  the new frame and dreams a few steps more, as the zoom carries it by zooming.

A scene cut (most pixels untrusted) starts fresh. Finished frames go to a work folder beside the output
(``OUT.frames/``) as they are done, so rerunning the same command continues where it stopped; the video
is written atomically, with the source's audio when both are MP4.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from .. import __version__
from ..animation import check_animation_path, save_animation
from ..errors import SettingError, UserError
from ..events import Child, Run, guarded
from ..images import array_from_image, check_output_folder, image_from_array, save_image, tensor_from_array
from ..motion.blend import steady_blend
from ..motion.flow import CUT_RELIABLE, flow, reliable, warp
from ..motion.frames import read_frames
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


def video(source: str | os.PathLike, output: str | os.PathLike, s: VideoSettings,
          mode_settings: ApplySettings | StylizeSettings | DreamSettings, events: Run,
          keep_frames: bool = False) -> Path:
    """Every selected frame of ``source`` through the mode, into ``output`` (.mp4, .gif or a folder)."""
    out = check_video_output(output)
    weight = _temporal_weight(s)
    frame_steps = _frame_iterations(s)
    size = getattr(mode_settings, "size", None)
    frames, rate = read_frames(source, size, s.start, s.end, s.every)
    framer = _framer(s, mode_settings, weight, frame_steps, frames[0])
    params = {"dreamstyle": __version__, "command": "video", "source": str(source),
              **as_params(s, temporal_weight=weight, frame_iterations=frame_steps), **framer.params,
              "frames": len(frames), "fps": float(rate)}
    work = out.with_name(out.name + ".frames")
    _claim(work, params)
    events.total = framer.first_steps + (len(frames) - 1) * framer.next_steps
    done: list[Image.Image] = []

    def keep() -> tuple[list[Image.Image], Path | None]:
        return done, None  # every finished frame is already in the work folder

    with guarded(events, keep):
        previous: tuple[np.ndarray, np.ndarray] | None = None  # (input, result) of the last frame
        for i, frame in enumerate(frames):
            path = work / f"{i:06d}.png"
            photo = array_from_image(frame)
            label = Child(events, f"frame {i + 1}/{len(frames)} ")
            if path.exists():  # done by an earlier run of the same command
                image = Image.open(path).convert("RGB")
                events.done += framer.first_steps if previous is None else framer.next_steps
            else:
                result = None
                if previous is not None and weight > 0:
                    back = flow(previous[0], photo)
                    mask = reliable(previous[0], photo, back)
                    if mask.mean() >= CUT_RELIABLE:
                        result = framer.next(i, photo, previous, back, mask, label)
                    else:  # a scene cut: this shot starts fresh
                        events.total += framer.first_steps - framer.next_steps
                if result is None:
                    result = framer.first(photo, label)
                image = image_from_array(result)
                save_image(image, path, params)
            # the next frame builds on exactly what was saved, so a resumed run matches an unbroken one
            previous = (photo, array_from_image(image))
            done.append(image)
        audio = (str(source), s.start, s.end) if Path(source).is_file() else None
        result_path = _write(done, out, float(rate), params, audio)
    if not keep_frames:
        shutil.rmtree(work, ignore_errors=True)
    events.finish(done[-1], result_path, params)
    return result_path


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


def _write(frames: list[Image.Image], out: Path, fps: float, params: dict[str, Any],
           audio: tuple[str, float, float | None] | None) -> Path:
    if out.suffix:
        return save_animation(frames, out, fps, params, audio)  # only an MP4 takes the audio
    staging = out.with_name(out.name + ".writing")  # a folder appears whole, by one rename
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for i, frame in enumerate(frames):
        save_image(frame, staging / f"{i:06d}.png", params)
    with contextlib.suppress(OSError):
        out.rmdir()  # an empty folder named as the output gives way
    os.replace(staging, out)
    return out


# --- the modes --------------------------------------------------------------------------------------

def _framer(s: VideoSettings, ms: Any, weight: float, frame_steps: int, first: Image.Image) -> Framer:
    if s.mode == "stylize":
        if not s.style_images:
            raise SettingError("style_images", "is needed by --mode stylize: give the painting(s) to paint in")
        if ms.save_every:
            raise SettingError("save_every", "is for still images; a video keeps each finished frame in its work "
                               "folder (OUT.frames/) until the video is written")
        return _Stylize(ms, s.style_images, weight, frame_steps, first)
    if s.style_images:
        raise SettingError("style_images", f"is for --mode stylize; --mode {s.mode} does not use it")
    if s.mode == "dream":
        return _Dream(ms, weight, frame_steps, first)
    if s.frame_iterations is not None:
        raise SettingError("frame_iterations", "is for --mode stylize and --mode dream; apply runs the network once "
                           "per frame")
    return _Apply(ms, weight)


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

        p = replace(self.prepared, content=image_from_array(photo), params=dict(self.prepared.params))
        return array_from_image(stylize.run(p, events))

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
        p = replace(p0, content=image_from_array(photo), init_image=image_from_array(start),
                    settings=replace(p0.settings, init="previous frame", pyramid=False), sizes=[size],
                    steps=[self.frame_steps], extra_terms=[(TemporalLoss(target, trust), self.weight)],
                    params=dict(p0.params))
        return array_from_image(stylize.run(p, events))


class _Dream:
    """Deep Dream: the first frame in full (octaves); each later one is the new frame plus ``weight`` of the
    previous dream's detail, warped by the flow where it is reliable, dreamed ``frame_steps`` steps more."""

    def __init__(self, ms: DreamSettings, weight: float, frame_steps: int, first: Image.Image) -> None:
        from .dream import Dreamer, octave_sizes

        self.settings, self.weight, self.frame_steps = ms, weight, frame_steps
        self.dreamer = Dreamer(ms)
        size = max(first.size)
        sizes = octave_sizes(size, ms)
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
    """Use ``work`` for this run's frames; frames left there by a different command are not reused."""
    record = work / "run.json"
    wanted = {k: v for k, v in params.items() if k != "dreamstyle"}
    if work.exists():
        try:
            earlier = json.loads(record.read_text())
        except (OSError, ValueError):
            earlier = None
        if earlier != wanted:
            raise UserError(f"'{work}' holds the frames of a different run; delete it, or write to another output")
        return
    work.mkdir()
    record.write_text(json.dumps(wanted, sort_keys=True))
