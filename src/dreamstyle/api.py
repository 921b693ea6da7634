"""The public Python API. The CLI is a thin layer over these functions."""

from __future__ import annotations

import math
import os
import time
import warnings
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import __version__
from .backbones import DEFAULT_BACKBONE, Backbone, get_spec
from .errors import UserError, check_choice
from .images import as_image, check_output_path, load_image, resized_tensor, save_image, to_image, to_tensor
from .color import PRESERVE_COLOR, combine_luminance, luminance_rgb, match_color, match_luminance
from .objectives import ContentLoss, Objective, StyleLoss, TVLoss
from .objectives.dream import DreamLoss, DreamTarget, resolve_channels
from .objectives.style import SMOOTHING, STYLE_LOSSES
from .optimize import check_settings, optimize_image, pyramid_sizes, split_iterations
from .optimize.memory import PROBE, estimate_peak_bytes, largest_fitting_size, require
from .progress import Progress
from .runtime import check_precision, prepare_cpu, resolve_device, resolve_precision, too_small_is_user_error

ImageLike = Union[str, os.PathLike, Image.Image]
TapWeights = Union[dict[str, float], Sequence[str], str, None]

# Loss weights for dreamstyle's normalized losses; a backbone may override them in its spec.
DEFAULTS = {"content_weight": 1.0, "style_weight": 1e3, "tv_weight": 100.0, "iterations": 180}
INITS = ("content", "noise", "style")
# A --dream weight of 1 means this much beside style_weight 1e3: a visible but light dream (chosen by eye).
DREAM_SCALE = 100.0
# A mirrored margin around the image as the network sees it (2 px per 128, at most this). Without it
# stride-2 layers see the top row 1.8x and the bottom row 0.13x as strongly as the inside: a thin
# line of coloured noise grows along one edge and the opposite edge stays unstyled.
EDGE_PAD = 8


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run; ``image`` is the best result so far and ``path`` where it was saved (if any)."""

    def __init__(self, image: Image.Image, path: Path | None, step: int, total: int) -> None:
        super().__init__(f"interrupted at step {step} of {total}")
        self.image, self.path, self.step, self.total = image, path, step, total


def parse_taps(spec: TapWeights, default: dict[str, float], what: str) -> dict[str, float]:
    """``['relu1_1:0.5', 'relu2_1']``, ``'relu1_1:0.5,relu2_1'`` or a dict -> ``{tap: weight}``."""
    if spec is None or spec == [] or spec == "":
        return dict(default)
    if isinstance(spec, dict):
        items = list(spec.items())
    else:
        parts = spec.split(",") if isinstance(spec, str) else [p for s in spec for p in str(s).split(",")]
        items = []
        for part in filter(None, (p.strip() for p in parts)):
            name, _, weight = part.partition(":")
            try:
                items.append((name, float(weight) if weight else 1.0))
            except ValueError:
                raise UserError(f"bad {what} entry '{part}': the weight after ':' must be a number, "
                                f"as in relu3_1:0.5") from None
    for name, weight in items:
        check_weight(f"{what} weight of {name}", weight)
    return dict(items)


def check_weight(what: str, value: float) -> float:
    if not isinstance(value, (int, float)) or value != value or value < 0:
        raise UserError(f"{what} must be a number >= 0, got {value}")
    return float(value)


def stylize(
    content: ImageLike,
    styles: ImageLike | Sequence[ImageLike],
    *,
    output: str | os.PathLike | None = None,
    model: str = DEFAULT_BACKBONE,
    weights: str | os.PathLike | None = None,
    size: int = 512,
    style_blend: Sequence[float] | None = None,
    content_weight: float | None = None,
    style_weight: float | None = None,
    tv_weight: float | None = None,
    style_layers: TapWeights = None,
    content_layers: TapWeights = None,
    style_loss: str = "gram",
    smooth: str | None = None,
    pooling: str = "max",
    preserve_color: str = "none",
    masks: Sequence[ImageLike] | None = None,
    optimizer: str = "lbfgs",
    iterations: int | None = None,
    lr: float | None = None,
    ema: float = 0.0,
    init: str = "content",
    seed: int = 0,
    pyramid: bool = True,
    style_scale: float = 1.0,
    device: str = "auto",
    precision: str = "auto",
    save_every: int = 0,
    dream: Sequence[str] | str | None = None,
    force: bool = False,
    edge_pad: bool = True,
    progress: bool = True,
) -> Image.Image:
    """Gatys et al. style transfer: an image with ``content``'s layout and the style images' textures.

    Returns the result as a PIL image (its ``info['dreamstyle']`` holds the parameters) and, if
    ``output`` is given, writes it there atomically with the parameters embedded. On Ctrl-C it
    saves the best image so far to ``output`` and raises :class:`Interrupted`.

    ``dream``: Deep Dream targets mixed into the objective, e.g. ``['auto=2']`` or just ``2`` (the
    backbone's dream tap that style and content don't use) or ``['blocks.10:strongest:8=5']``; weights are relative to
    the target's activation on the content. Naming a style/content tap warns unless ``force``.
    """
    started = time.perf_counter()
    # --- check everything before any slow work
    spec = get_spec(model)
    if not isinstance(size, int) or size <= 0:
        raise UserError(f"--size must be a positive number of pixels, got {size}")
    check_precision(precision)
    knobs = {**DEFAULTS, **spec.defaults}
    content_weight = check_weight("--content-weight", knobs["content_weight"] if content_weight is None else content_weight)
    style_weight = check_weight("--style-weight", knobs["style_weight"] if style_weight is None else style_weight)
    tv_weight = check_weight("--tv-weight", knobs["tv_weight"] if tv_weight is None else tv_weight)
    iterations = int(knobs["iterations"] if iterations is None else iterations)
    smooth = knobs.get("smooth", "none") if smooth is None else smooth
    check_choice("--style-loss", style_loss, STYLE_LOSSES)
    check_choice("--smooth", smooth, SMOOTHING)
    check_choice("--preserve-color", preserve_color, PRESERVE_COLOR)
    if iterations < 1:
        raise UserError(f"--iterations must be at least 1, got {iterations}")
    if not (math.isfinite(style_scale) and 0 < style_scale <= 8):
        raise UserError(f"--style-scale must be a number in (0, 8], got {style_scale}")
    check_settings(optimizer, lr, ema)
    if save_every < 0:
        raise UserError(f"--save-every must be >= 0, got {save_every}")
    out_path = check_output_path(output) if output is not None else None
    if save_every and out_path is None:
        raise UserError("--save-every needs an output path to name the intermediate images after")
    style_list = [styles] if isinstance(styles, (str, os.PathLike, Image.Image)) else list(styles)
    if not style_list:
        raise UserError("give at least one style image")
    blend = [1.0] * len(style_list) if style_blend is None else [float(b) for b in style_blend]
    if len(blend) != len(style_list):
        raise UserError(f"--style-weights has {len(blend)} values for {len(style_list)} style images; "
                        "give one per style image")
    for b in blend:
        check_weight("each --style-weights value", b)
    if sum(blend) <= 0:
        raise UserError("--style-weights must not all be 0")
    style_taps = parse_taps(style_layers, spec.style_taps, "--style-layers")
    content_taps = parse_taps(content_layers, spec.content_taps, "--content-layers")
    dream_targets = _dream_targets(dream, model, [*style_taps, *content_taps], force)
    init_file = None
    if init not in INITS:
        if not Path(init).exists():
            raise UserError(f"--init must be one of {', '.join(INITS)} or an image file; '{init}' is neither")
        init_file = load_image(init)
    content_img, content_name = as_image(content, "content")
    style_imgs = [as_image(s, "style") for s in style_list]
    mask_imgs = _load_masks(masks, content_img, len(style_list))
    dev = resolve_device(device)
    precision = resolve_precision(precision, dev)
    if dev.type == "cpu":
        prepare_cpu()
    backbone = Backbone(model, weights, dev, precision, pooling)
    extractor = backbone.extractor([*style_taps, *content_taps, *(t.tap for t in dream_targets)],  # checks names
                                   pad=EDGE_PAD if edge_pad else 0)

    params = {
        "dreamstyle": __version__, "command": "stylize", "content": content_name,
        "styles": [name for _, name in style_imgs], "style_blend": blend, "model": model,
        "weights": None if weights is None else str(weights), "size": size, "content_weight": content_weight,
        "style_weight": style_weight, "tv_weight": tv_weight, "style_layers": style_taps,
        "content_layers": content_taps, "style_loss": style_loss, "smooth": smooth, "pooling": pooling,
        "preserve_color": preserve_color, "masks": None if masks is None else [str(m) for m in masks],
        "optimizer": optimizer, "iterations": iterations, "lr": lr, "ema": ema, "init": init, "seed": seed,
        "pyramid": pyramid, "style_scale": style_scale, "precision": precision,
        "dream": [str(t) for t in dream_targets] or None,
    }

    _check_memory(extractor, content_img, size, dev, model)

    # --- coarse to fine
    torch.manual_seed(seed)
    sizes = (pyramid_sizes(size) if pyramid else [size])[-iterations:]  # at least one step per level
    steps = split_iterations(iterations, sizes)
    bar = Progress(sum(steps), enabled=progress)
    current: torch.Tensor | None = None
    done = 0
    for level_size, level_steps in zip(sizes, steps):
        content_t = resized_tensor(content_img, level_size, dev)
        h, w = content_t.shape[-2:]
        seen_content, style_ts = content_t, [resized_tensor(img, max(1, round(level_size * style_scale)), dev)
                                             for img, _ in style_imgs]
        if preserve_color == "luminance":
            seen_content = luminance_rgb(content_t)
            style_ts = [match_luminance(s, content_t) for s in style_ts]
        elif preserve_color == "match":
            style_ts = [match_color(s, content_t) for s in style_ts]
        with torch.no_grad(), too_small_is_user_error(model, level_size, "a larger --size or --style-scale"):
            content_feats = extractor(seen_content)
            style_feats = [extractor(s) for s in style_ts]
        level_masks = None if mask_imgs is None else [_mask_tensor(m, w, h, dev, extractor.margin(h, w))
                                                     for m in mask_imgs]
        terms = [
            (ContentLoss(content_taps, content_feats), content_weight),
            (StyleLoss(style_taps, style_feats, blend, style_loss, level_masks, smooth), style_weight),
            (TVLoss(), tv_weight),
        ]
        if dream_targets:
            if current is None:  # channels chosen once, on the content, and kept through the levels
                dream_targets = resolve_channels(dream_targets, content_feats)
                params["dream"] = [str(t) for t in dream_targets]
            # measured relative to the content's own activation, so a weight means the same at every level
            terms.append((DreamLoss(dream_targets, reference=content_feats), DREAM_SCALE))
        objective = Objective(terms)
        if current is None:
            current = _initial_image(init, init_file, seen_content, style_ts[0], dev)
            if preserve_color == "luminance":
                current = luminance_rgb(current)
        else:
            current = F.interpolate(current, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)

        def finish(x: torch.Tensor) -> Image.Image:
            """What the user sees: in luminance mode, the result's luminance in the content's colours."""
            if preserve_color == "luminance":
                x = combine_luminance(x, content_t)
            return to_image(x)

        def loss_fn(x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            return objective(extractor(x), x)

        def on_step(step: int, loss: float, parts: dict[str, float], image: torch.Tensor) -> None:
            bar.update(f"{w}x{h}", loss, parts)
            if save_every and (done + step) % save_every == 0:
                save_image(finish(image), _numbered(out_path, done + step), params)

        result = optimize_image(current, loss_fn, level_steps, optimizer, lr, on_step, average=ema)
        current, done = result.image, done + result.iterations
        if result.interrupted:
            bar.close()
            image = finish(current)
            params.update(interrupted_at=done, seconds=round(time.perf_counter() - started, 2))
            path = save_image(image, out_path, params) if out_path else None
            raise Interrupted(image, path, done, sum(steps))
    bar.close()
    params.update(final_loss=result.loss, seconds=round(time.perf_counter() - started, 2))
    image = finish(current)
    image.info["dreamstyle"] = params
    if out_path is not None:
        save_image(image, out_path, params)
    return image


def _dream_targets(dream: Sequence[str] | str | None, model: str, used: Sequence[str],
                   force: bool) -> list[DreamTarget]:
    """``--dream`` targets for stylize. ``auto`` picks the backbone's dream tap that style and content
    don't use; a tap they do use gets a warning (the optimizer would undo the dream there) unless ``force``."""
    if dream is None or dream == [] or dream == "":
        return []
    from .dream import parse_targets

    items = [dream] if isinstance(dream, str) else list(dream)
    items = [f"auto={t}" if isinstance(t, (int, float)) or _is_number(t) else t for t in items]  # --dream 2
    targets = parse_targets(items, model, "--dream", avoid=used)
    overlap = sorted({t.tap for t in targets} & set(used))
    if overlap and not force:
        warnings.warn(f"--dream on {', '.join(overlap)}, which the style/content losses also use: they will "
                      "pull against the dream. Use another tap (see `dreamstyle layers`), or --force to keep it",
                      stacklevel=3)
    return targets


def _is_number(text) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def _check_memory(extractor: torch.nn.Module, content: Image.Image, size: int, device: torch.device,
                  model: str) -> None:
    """Refuse up front, naming the largest size that fits, when the run would not fit in memory."""
    scale = size / max(content.size)
    w, h = round(content.width * scale), round(content.height * scale)
    probe = resized_tensor(content, PROBE, device)
    need = estimate_peak_bytes(extractor, probe, h, w)
    require(need, device, f"--size {size} with {model}",
            lambda have: f"use --size {largest_fitting_size(size, need, have)} or less, or a lighter --model")


def _load_masks(masks: Sequence[ImageLike] | None, content: Image.Image, count: int) -> list[Image.Image] | None:
    """One grayscale mask per style image, with the content's aspect ratio (white: that style goes here)."""
    if masks is None or len(masks) == 0:
        return None
    if len(masks) != count:
        raise UserError(f"--masks has {len(masks)} masks for {count} style images; give one mask per style, "
                        "in the order of the styles")
    loaded = []
    cw, ch = content.size
    for mask in masks:
        img, name = as_image(mask, "mask")
        mw, mh = img.size
        if abs(mw / mh - cw / ch) > 0.02 * (cw / ch):
            raise UserError(f"mask '{name}' is {mw}x{mh} but the content is {cw}x{ch}; a mask must have the "
                            "content's size (or at least its aspect ratio)")
        loaded.append(img.convert("L"))
    return loaded


def _mask_tensor(mask: Image.Image, w: int, h: int, device: torch.device, pad: int = 0) -> torch.Tensor:
    """The mask at the output's size, with the same mirrored margin the extractor adds to the image."""
    resized = mask.resize((w, h), Image.BILINEAR)
    m = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0)[None, None].to(device)
    return F.pad(m, (pad, pad, pad, pad), mode="reflect") if pad else m



def _initial_image(init: str, init_file: Image.Image | None, content: torch.Tensor, style: Image.Image,
                   device: torch.device) -> torch.Tensor:
    h, w = content.shape[-2:]
    if init == "content":
        return content.clone()
    if init == "noise":
        return torch.rand(content.shape, device=device)
    source = style if init == "style" else init_file
    return to_tensor(source.resize((w, h), Image.LANCZOS)).to(device)


def _numbered(path: Path, step: int) -> Path:
    return path.with_name(f"{path.stem}.{step:05d}{path.suffix}")
