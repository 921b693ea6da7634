"""Deep Dream (Mordvintsev et al. 2015): ``dream()`` for one image, ``dream_zoom()`` for an endless zoom.

Octaves run from small to large; at each one the image is the photo at that size plus the detail
dreamed so far, carried up from the octave below (as the original does), so the dream keeps
growing without blurring the photo.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from ..animation import ANIMATION_FORMATS, check_animation_path, save_animation
from ..backbones import FeatureExtractor, get_spec, min_side
from ..color import combine_luminance, match_color
from ..errors import SettingError, UserError
from ..events import Child, Run, guarded
from ..images import (
    Picture,
    as_image,
    check_output_path,
    header,
    refuse_output_over_inputs,
    resized_tensor,
    save_image,
    short_side,
    take_in,
    to_image,
    to_tensor,
)
from ..objectives.dream import DreamLoss, parse_targets, resolve_channels
from ..optimize import coarse_to_fine, octave_sizes
from ..optimize.ascent import ascend
from ..optimize.memory import (
    BASE_BYTES,
    BYTES_PER_ACTIVATION,
    PROBE,
    activation_elements,
    require,
)
from ..settings import DreamSettings, ZoomSettings, as_params
from .session import Session, check_weights_file, keep_image

ImageLike = str | os.PathLike | Image.Image
RANK_SIZE = 512  # 'strongest'/'weakest' channels are ranked on the image at this size (or smaller)
# Whole-image buffers a dream keeps at once (photo, detail, current, rolled, gradient, Laplacian bands...).
IMAGE_BUFFERS = 12


class Dreamer:
    """A backbone, its extractor for the targets, and the dream settings: one octave or one zoom frame at a time."""

    def __init__(self, settings: DreamSettings) -> None:
        s = settings
        self.settings = s
        self.targets = parse_targets(s.targets, s.model)
        taps = [t.tap for t in self.targets]
        self.need = min_side(get_spec(s.model), taps)  # checks tap names too
        check_weights_file(s.weights)
        self.guide = None if s.guide is None else as_image(s.guide, "guide")
        self.session = Session.open(s, taps)
        self.device = self.session.device
        self.backbone = self.session.backbone
        self.extractor: FeatureExtractor = self.backbone.extractor(taps)

    def sizes(self, size: int) -> list[int]:
        """The octaves' long sides for a dream whose last octave is ``size``."""
        return octave_sizes(size, self.settings.octaves, self.settings.octave_scale)

    def params(self, image_name: str, size: int) -> dict[str, Any]:
        """The parameters a dream of this photo records (targets with their channels chosen)."""
        return header("dream", image=image_name,
                      **as_params(self.settings, targets=[str(t) for t in self.targets], size=size,
                                  guide=None if self.guide is None else self.guide[1]))

    def check_size(self, image: Image.Image, sizes: list[int]) -> None:
        """The smallest octave must reach the deepest target tap: refuse up front, in one line."""
        short = short_side(image, sizes[0])
        if short < self.need:
            raise SettingError("octaves", f"make the smallest octave {short} px on its short side, too small for "
                               f"{self.settings.model} at these taps (at least {self.need} px); use fewer "
                               "{octaves}, a smaller {octave_scale} or a larger {size}")

    def check_memory(self, image: Image.Image, size: int, tile: int) -> None:
        """Refuse up front when one tile's forward and backward plus the whole-image buffers would not fit.

        The advice is what helps: a smaller tile while the tile's activations are the problem (and a smaller
        one is allowed), else a smaller size, as the whole-image buffers grow with it whatever the tile."""
        def pixels(side: int) -> int:  # the image's pixels with its long side at ``side``
            scale = side / max(image.size)
            return max(1, round(image.height * scale)) * max(1, round(image.width * scale))

        per_pixel = activation_elements(self.extractor, resized_tensor(image, PROBE, self.device), 1, 1)

        def need(side: int, tile_px: int) -> float:
            return BASE_BYTES + BYTES_PER_ACTIVATION * per_pixel * pixels(min(tile_px, side)) \
                + IMAGE_BUFFERS * 3 * 4 * pixels(side)

        tile_side = min(tile, size)
        smallest_tile = 64  # DreamSettings.tile's minimum

        def fix(have: float) -> tuple[str, str]:
            if tile_side > smallest_tile and need(size, smallest_tile) <= have:
                fitting = max(t for t in range(smallest_tile, tile_side, 16) if need(size, t) <= have)
                return "tile", f"use {{tile}} {fitting} or less"
            sides = [side for side in range(32, size, 16) if need(side, tile) <= have]
            if sides:
                return "size", f"use {{size}} {max(sides)} or less"
            return ("tile", "use a smaller {tile} or {size}") if tile > smallest_tile else \
                ("size", "use a smaller {size}, or a lighter {model}")

        def what(setting: str) -> str:
            return f"of {size} px in tiles of {tile_side} px" if setting == "size" else \
                f"of {tile_side} px at {{size}} {size}"

        require(need(size, tile), self.device, "tile", what, fix)

    def fix_channels(self, image: Image.Image) -> None:
        """Choose 'strongest'/'weakest' channels on ``image`` and check explicit channel numbers."""
        if not any(t.select or t.channels for t in self.targets):
            return  # whole taps: nothing to choose or check, so no extra forward pass
        with torch.no_grad():
            feats = self.extractor(resized_tensor(image, min(RANK_SIZE, max(image.size)), self.device))
        self.targets = resolve_channels(self.targets, feats)

    def loss_at(self, size: int) -> DreamLoss:
        guides = None
        if self.guide is not None:
            with torch.no_grad():
                guides = self.extractor(resized_tensor(self.guide[0], size, self.device))
        return DreamLoss(self.targets, self.settings.objective, guides=guides)

    def run(self, image: torch.Tensor, loss: DreamLoss, steps: int, generator: torch.Generator, events: Run,
            label: str) -> torch.Tensor:
        s = self.settings

        def score(tile: torch.Tensor) -> torch.Tensor:
            return -loss(self.extractor(tile), tile)

        seen: list[torch.Tensor] = []  # the image being dreamed, for a preview when one is wanted

        return ascend(image, score, steps, step_size=s.step_size, jitter=s.jitter, tile=s.tile,
                      laplacian=s.laplacian, generator=generator, watch=seen.append,
                      on_step=lambda step, value: events.step(label, value, preview=lambda: to_image(seen[-1])))


def recolor(result: torch.Tensor, original: torch.Tensor, preserve_color: str) -> torch.Tensor:
    if preserve_color == "luminance":
        return combine_luminance(result, original)
    if preserve_color == "match":
        return match_color(result, original)
    return result


def dream(image: ImageLike | Picture, settings: DreamSettings, output: str | os.PathLike | None = None,
          events: Run | None = None, dreamer: Dreamer | None = None) -> Image.Image:
    """Deep Dream: amplify what the network sees in ``image`` at the target taps/channels.

    Images larger than ``tile`` are processed in tiles, so memory stays bounded at any size. Returns
    the dream (parameters in ``info['dreamstyle']``); writes it to ``output`` if given. On Ctrl-C the
    image so far is saved and :class:`~dreamstyle.events.Interrupted` raised.
    """
    started = time.perf_counter()
    s = settings
    if output is not None and os.path.splitext(str(output))[1].lower() in ANIMATION_FORMATS:
        raise UserError(f"'{output}' is an animation format: add --zoom FRAMES for an endless zoom, or write "
                        "a still image such as out.png")
    out_path = check_output_path(output) if output is not None else None
    if out_path is not None:
        refuse_output_over_inputs(out_path, [image, s.guide])
    picture = take_in(image, "image")  # taken in once: the zoom hands its picture (and its name) in here
    photo, name = picture.image, picture.name
    size = max(photo.size) if s.size is None else s.size
    if size < 32:
        raise SettingError("size", f"must be at least 32 pixels, got {size}")
    dreamer = dreamer or Dreamer(s)
    sizes = dreamer.sizes(size)
    dreamer.check_size(photo, sizes)
    dreamer.check_memory(photo, size, s.tile)
    dreamer.fix_channels(photo)
    params = dreamer.params(name, size)
    events = events or Run("dream", 0)
    events.expect(len(sizes) * s.iterations)
    generator = torch.Generator().manual_seed(s.seed)
    dreamer.session.govern(events)
    state: dict[str, Any] = {"current": None, "base": None}

    def keep() -> tuple[Image.Image, Path | None]:
        current = state["current"]
        if current is None:
            result = photo
        else:
            result = to_image(recolor(current, resized_tensor(photo, max(current.shape[-2:]), dreamer.device),
                                      s.preserve_color))
        return keep_image(events, result, out_path, params, started)

    with guarded(events, keep):
        octaves = _Octaves(dreamer, photo, generator, events, state)
        dreamed = coarse_to_fine(octaves, sizes, [s.iterations] * len(sizes))
        result = to_image(recolor(dreamed, state["base"], s.preserve_color))  # the top octave's photo, set by the run
        params["seconds"] = round(time.perf_counter() - started, 2)
        result.info["dreamstyle"] = params
        path = save_image(result, out_path, params) if out_path is not None else None
    events.finish(result, path, params)
    return result


class _Octaves:
    """Deep Dream's octaves for the schedule driver: the photo at each octave's size plus the detail dreamed
    so far, carried up from the octave below (as the original does), then the ascent there."""

    def __init__(self, dreamer: Dreamer, photo: Image.Image, generator: torch.Generator, events: Run,
                 state: dict[str, Any]) -> None:
        self.dreamer, self.photo, self.generator, self.events = dreamer, photo, generator, events
        self.state = state  # 'current' (what an interruption keeps) and 'base' (this octave's photo)
        self.detail: torch.Tensor | None = None

    def bind(self, size: int) -> tuple[DreamLoss, torch.Tensor]:
        return self.dreamer.loss_at(size), resized_tensor(self.photo, size, self.dreamer.device)

    def start(self, criterion: tuple[DreamLoss, torch.Tensor], below: torch.Tensor | None) -> torch.Tensor:
        base = criterion[1]
        if self.detail is not None:
            self.detail = F.interpolate(self.detail, size=base.shape[-2:], mode="bilinear", align_corners=False)
        self.state["current"] = base if self.detail is None else (base + self.detail).clamp(0, 1)
        return self.state["current"]

    def optimize(self, criterion: tuple[DreamLoss, torch.Tensor], start: torch.Tensor, steps: int) -> torch.Tensor:
        loss, base = criterion
        h, w = base.shape[-2:]
        self.state["current"] = current = self.dreamer.run(start, loss, steps, self.generator, self.events,
                                                           f"{w}x{h}")
        self.detail = current - base
        self.state["base"] = base
        return current


def _zoom_in(image: torch.Tensor, scale: float) -> torch.Tensor:
    """Crop the centre 1/scale of the image and resize it back to full size."""
    h, w = image.shape[-2:]
    ch, cw = max(1, round(h / scale)), max(1, round(w / scale))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = image[..., top:top + ch, left:left + cw]
    return F.interpolate(crop, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def dream_zoom(image: ImageLike, output: str | os.PathLike, settings: DreamSettings, zoom: ZoomSettings,
               events: Run | None = None) -> list[Image.Image]:
    """An endless-zoom animation (GIF or MP4, by ``output``'s extension) of ``zoom.frames`` frames.

    The first frame is a full dream; every next one zooms into the centre by ``zoom_scale`` and dreams
    ``frame_iterations`` more steps at the same targets (on the same network), so new detail keeps
    growing out of the old. Ctrl-C writes the frames so far, the first frame's dream included.
    """
    started = time.perf_counter()
    out_path = check_animation_path(output)
    refuse_output_over_inputs(out_path, [image, settings.guide])
    dreamer = Dreamer(settings)
    picture = take_in(image, "image")
    size = max(picture.size) if settings.size is None else settings.size
    first_steps = len(dreamer.sizes(size)) * settings.iterations
    events = events or Run("dream --zoom", 0)
    events.expect(first_steps + (zoom.frames - 1) * zoom.frame_iterations)
    images: list[Image.Image] = []
    used: dict[str, Any] = {}

    def keep() -> tuple[Any, Path | None]:
        if not images:
            return None, None
        params = {**used, "command": "dream --zoom", **as_params(zoom, frames=len(images)),
                  "interrupted_at": events.done, "seconds": round(time.perf_counter() - started, 2)}
        save_animation(images, out_path, zoom.fps, params)
        events.finish(images[-1], out_path, params, interrupted=True)
        return images[-1], out_path

    first_events = Child(events)
    with guarded(events, keep):
        try:
            first = dream(picture, settings, events=first_events, dreamer=dreamer)
        except KeyboardInterrupt as exc:  # the first frame so far is a frame too
            kept = getattr(exc, "image", None)
            if kept is not None:
                images.append(kept)
                used.update(dreamer.params(picture.name, size))
            raise  # the zoom's guard writes the animation (and keeps what stopped the run: SIGTERM is 143)
        images.append(first)
        used.update(first.info["dreamstyle"])
        generator = torch.Generator().manual_seed(settings.seed + 1)
        current = to_tensor(first).to(dreamer.device)
        loss = dreamer.loss_at(max(current.shape[-2:]))
        for i in range(1, zoom.frames):
            zoomed = _zoom_in(current, zoom.zoom_scale)
            current = dreamer.run(zoomed, loss, zoom.frame_iterations, generator, events,
                                  f"frame {i + 1}/{zoom.frames}")
            current = recolor(current, zoomed, settings.preserve_color)  # colours carried frame to frame
            images.append(to_image(current))
        params = {**used, "command": "dream --zoom", **as_params(zoom, frames=len(images)),
                  "seconds": round(time.perf_counter() - started, 2)}
        save_animation(images, out_path, zoom.fps, params)
    events.finish(images[-1], out_path, params)
    return images


__all__ = ["dream", "dream_zoom", "Dreamer"]
