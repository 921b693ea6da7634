"""Deep Dream (Mordvintsev et al. 2015): ``dream()`` for one image, ``dream_zoom()`` for an endless zoom.

Octaves run from small to large; at each one the image is the photo at that size plus the detail
dreamed so far, carried up from the octave below (as the original does), so the dream keeps
growing without blurring the photo.
"""

from __future__ import annotations

import os
import time
from typing import Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from . import __version__
from .api import ImageLike, Interrupted
from .backbones import DEFAULT_BACKBONE, Backbone, FeatureExtractor, get_spec
from .color import PRESERVE_COLOR, combine_luminance, match_color
from .errors import UserError, check_choice
from .images import as_image, check_output_path, resized_tensor, save_image, to_image, to_tensor
from .animation import ANIMATION_FORMATS, check_animation_path, save_animation
from .objectives.dream import DREAM_OBJECTIVES, DreamLoss, DreamTarget, parse_target, resolve_channels
from .optimize.ascent import ascend
from .optimize.memory import PROBE, estimate_peak_bytes, require
from .progress import Progress
from .runtime import check_precision, prepare_cpu, resolve_device, resolve_precision

RANK_SIZE = 512  # 'strongest'/'weakest' channels are ranked on the image at this size (or smaller)


def default_targets(model: str, avoid: Sequence[str] = ()) -> list[DreamTarget]:
    """The backbone's default dream tap, skipping taps in ``avoid`` (those the style and content losses use)."""
    spec = get_spec(model)
    for tap in spec.dream_taps:
        if tap not in avoid:
            return [DreamTarget(tap)]
    raise UserError(f"{model} has no default dream tap outside {', '.join(avoid)}; name one with --dream TAP=W")


def parse_targets(targets: Sequence[str | DreamTarget] | str | None, model: str, option: str = "--target",
                  avoid: Sequence[str] = ()) -> list[DreamTarget]:
    """Targets as text or DreamTarget; none (or 'auto' taps) means the backbone's default dream tap."""
    if targets is None or targets == [] or targets == "":
        return default_targets(model, avoid)
    items = [targets] if isinstance(targets, (str, DreamTarget)) else list(targets)
    parsed = []
    for item in items:
        t = item if isinstance(item, DreamTarget) else parse_target(item, option)
        if t.tap == "auto":
            t = DreamTarget(default_targets(model, avoid)[0].tap, t.channels, t.select, t.weight)
        parsed.append(t)
    return parsed


def check_dream_settings(objective: str, octaves: int, octave_scale: float, iterations: int, step_size: float,
                         jitter: int, tile: int, laplacian: int, preserve_color: str) -> None:
    """Every dream setting, checked before any slow work; each problem is a one-line UserError."""
    check_choice("--objective", objective, DREAM_OBJECTIVES)
    check_choice("--preserve-color", preserve_color, PRESERVE_COLOR)
    checks = [
        (isinstance(octaves, int) and octaves >= 1, f"--octaves must be a whole number >= 1, got {octaves}"),
        (1 < octave_scale <= 4, f"--octave-scale must be in (1, 4], got {octave_scale}"),
        (isinstance(iterations, int) and iterations >= 1, f"--iterations must be >= 1, got {iterations}"),
        (0 < step_size <= 1, f"--step-size must be in (0, 1], got {step_size}"),
        (jitter >= 0, f"--jitter must be >= 0 pixels, got {jitter}"),
        (tile >= 64, f"--tile must be at least 64 pixels, got {tile}"),
        (0 <= laplacian <= 8, f"--laplacian must be 0-8 levels, got {laplacian}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)


class Dreamer:
    """A backbone, its extractor for the targets, and the dream settings: one octave or one zoom frame at a time."""

    def __init__(self, model: str | None, weights, targets, objective: str, device: str, precision: str,
                 guide: ImageLike | None) -> None:
        self.model = model or DEFAULT_BACKBONE
        check_precision(precision)
        self.targets = parse_targets(targets, self.model)
        self.objective = objective
        self.guide = None if guide is None else as_image(guide, "guide")
        self.device = resolve_device(device)
        if self.device.type == "cpu":
            prepare_cpu()
        self.backbone = Backbone(self.model, weights, self.device, resolve_precision(precision, self.device))
        self.extractor: FeatureExtractor = self.backbone.extractor([t.tap for t in self.targets])

    def check_memory(self, image: Image.Image, size: int, tile: int) -> None:
        """Refuse up front when one tile's forward and backward would not fit (tiles bound the memory)."""
        scale = size / max(image.size)
        h, w = min(tile, round(image.height * scale)), min(tile, round(image.width * scale))
        need = estimate_peak_bytes(self.extractor, resized_tensor(image, PROBE, self.device), h, w)
        require(need, self.device, f"dreaming in {tile}-px tiles", lambda have: "use a smaller --tile")

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
        return DreamLoss(self.targets, self.objective, guides=guides)

    def run(self, image: torch.Tensor, loss: DreamLoss, steps: int, generator: torch.Generator, bar: Progress,
            label: str, **settings) -> torch.Tensor:
        def score(tile: torch.Tensor) -> torch.Tensor:
            return -loss(self.extractor(tile), tile)

        return ascend(image, score, steps, generator=generator,
                      on_step=lambda step, value: bar.update(label, value, {}), **settings)


def _finish(result: torch.Tensor, original: torch.Tensor, preserve_color: str) -> torch.Tensor:
    if preserve_color == "luminance":
        return combine_luminance(result, original)
    if preserve_color == "match":
        return match_color(result, original)
    return result


def dream(
    image: ImageLike,
    *,
    output: str | os.PathLike | None = None,
    model: str | None = None,
    weights: str | os.PathLike | None = None,
    targets: Sequence[str | DreamTarget] | str | None = None,
    objective: str = "l2",
    size: int | None = None,
    octaves: int = 4,
    octave_scale: float = 1.4,
    iterations: int = 10,
    step_size: float = 0.01,
    jitter: int = 32,
    tile: int = 512,
    laplacian: int = 4,
    guide: ImageLike | None = None,
    preserve_color: str = "none",
    seed: int = 0,
    device: str = "auto",
    precision: str = "auto",
    progress: bool = True,
) -> Image.Image:
    """Deep Dream: amplify what the network sees in ``image`` at the target taps/channels.

    ``targets``: e.g. ``['blocks.8', 'blocks.10:strongest:8=2']`` (default: the backbone's dream tap).
    ``size``: long side of the result (default: the image's own). Images larger than ``tile`` are
    processed in tiles, so memory stays bounded at any size. ``guide``: steer the features toward
    those of this image instead. Returns the dream (parameters in ``info['dreamstyle']``); writes
    it to ``output`` if given. On Ctrl-C the image so far is saved and :class:`Interrupted` raised.
    """
    started = time.perf_counter()
    check_dream_settings(objective, octaves, octave_scale, iterations, step_size, jitter, tile, laplacian,
                         preserve_color)
    if output is not None and os.path.splitext(str(output))[1].lower() in ANIMATION_FORMATS:
        raise UserError(f"'{output}' is an animation format: add --zoom FRAMES for an endless zoom, or write "
                        "a still image such as out.png")
    out_path = check_output_path(output) if output is not None else None
    photo, name = as_image(image, "image")
    size = max(photo.size) if size is None else size
    if not isinstance(size, int) or size < 32:
        raise UserError(f"--size must be at least 32 pixels, got {size}")
    dreamer = Dreamer(model, weights, targets, objective, device, precision, guide)
    dreamer.check_memory(photo, size, tile)
    dreamer.fix_channels(photo)
    params = {"dreamstyle": __version__, "command": "dream", "image": name, "model": dreamer.model,
              "weights": None if weights is None else str(weights), "targets": [str(t) for t in dreamer.targets],
              "objective": objective, "size": size, "octaves": octaves, "octave_scale": octave_scale,
              "iterations": iterations, "step_size": step_size, "jitter": jitter, "tile": tile,
              "laplacian": laplacian, "guide": None if dreamer.guide is None else dreamer.guide[1],
              "preserve_color": preserve_color, "seed": seed}
    generator = torch.Generator().manual_seed(seed)
    sizes = [max(32, round(size / octave_scale ** k)) for k in range(octaves - 1, -1, -1)]
    bar = Progress(len(sizes) * iterations, enabled=progress)
    settings = dict(step_size=step_size, jitter=jitter, tile=tile, laplacian=laplacian)
    detail: torch.Tensor | None = None
    base = current = resized_tensor(photo, sizes[0], dreamer.device)
    done = 0
    try:
        for octave_size in sizes:
            base = resized_tensor(photo, octave_size, dreamer.device)
            if detail is not None:
                detail = F.interpolate(detail, size=base.shape[-2:], mode="bilinear", align_corners=False)
            current = base if detail is None else (base + detail).clamp(0, 1)
            h, w = base.shape[-2:]
            current = dreamer.run(current, dreamer.loss_at(octave_size), iterations, generator, bar,
                                  f"{w}x{h}", **settings)
            detail = current - base
            done += iterations
    except KeyboardInterrupt:
        bar.close()
        result = to_image(_finish(current, resized_tensor(photo, max(current.shape[-2:]), dreamer.device), preserve_color))
        params.update(interrupted_at=done, seconds=round(time.perf_counter() - started, 2))
        path = save_image(result, out_path, params) if out_path else None
        raise Interrupted(result, path, done, len(sizes) * iterations) from None
    bar.close()
    result = to_image(_finish(current, base, preserve_color))
    params["seconds"] = round(time.perf_counter() - started, 2)
    result.info["dreamstyle"] = params
    if out_path is not None:
        save_image(result, out_path, params)
    return result


def _zoom_in(image: torch.Tensor, scale: float) -> torch.Tensor:
    """Crop the centre 1/scale of the image and resize it back to full size."""
    h, w = image.shape[-2:]
    ch, cw = max(1, round(h / scale)), max(1, round(w / scale))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = image[..., top:top + ch, left:left + cw]
    return F.interpolate(crop, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def dream_zoom(image: ImageLike, output: str | os.PathLike, *, frames: int = 48, zoom_scale: float = 1.05,
               frame_iterations: int = 4, fps: int = 12, size: int | None = 384, **options) -> list[Image.Image]:
    """An endless-zoom animation (GIF or MP4, by ``output``'s extension) of ``frames`` frames.

    The first frame is a full ``dream()`` (``options`` are its keyword arguments); every next one
    zooms into the centre by ``zoom_scale`` and dreams ``frame_iterations`` more steps at the same
    targets, so new detail keeps growing out of the old.
    """
    started = time.perf_counter()
    out_path = check_animation_path(output)
    if not isinstance(frames, int) or frames < 2:
        raise UserError(f"--zoom needs at least 2 frames, got {frames}")
    if not 1 < zoom_scale <= 2:
        raise UserError(f"--zoom-scale must be in (1, 2], got {zoom_scale}")
    if not isinstance(fps, int) or not 1 <= fps <= 60:
        raise UserError(f"--fps must be 1-60, got {fps}")
    if not isinstance(frame_iterations, int) or frame_iterations < 1:
        raise UserError(f"--frame-iterations must be >= 1, got {frame_iterations}")
    first = dream(image, size=size, **options)
    used = first.info["dreamstyle"]  # every setting, resolved (channels chosen, defaults filled in)
    dreamer = Dreamer(used["model"], options.get("weights"), used["targets"], used["objective"],
                      options.get("device", "auto"), options.get("precision", "auto"), options.get("guide"))
    settings = {k: used[k] for k in ("step_size", "jitter", "tile", "laplacian")}
    generator = torch.Generator().manual_seed(used["seed"] + 1)
    current = to_tensor(first).to(dreamer.device)
    loss = dreamer.loss_at(max(current.shape[-2:]))
    images = [first]
    bar = Progress((frames - 1) * frame_iterations, enabled=options.get("progress", True))
    try:
        for i in range(1, frames):
            zoomed = _zoom_in(current, zoom_scale)
            current = dreamer.run(zoomed, loss, frame_iterations, generator, bar, f"frame {i + 1}/{frames}",
                                  **settings)
            current = _finish(current, zoomed, used["preserve_color"])  # colours carried frame to frame
            images.append(to_image(current))
        interrupted = False
    except KeyboardInterrupt:  # keep what was made: write the frames so far
        interrupted = True
    bar.close()
    params = {**used, "command": "dream --zoom", "frames": len(images), "zoom_scale": zoom_scale,
              "frame_iterations": frame_iterations, "fps": fps, "seconds": round(time.perf_counter() - started, 2)}
    save_animation(images, out_path, fps, params)
    if interrupted:
        raise Interrupted(images[-1], out_path, len(images), frames)
    return images


__all__ = ["dream", "dream_zoom", "default_targets", "parse_targets", "ANIMATION_FORMATS"]
