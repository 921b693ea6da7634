"""Style transfer by optimization (Gatys et al. 2015, with the controls of Gatys et al. 2017).

:func:`prepare` checks every input and loads what the run needs (so bad input costs nothing and
fails before any slow work); :func:`run` optimizes coarse to fine: at each pyramid level the targets
are recomputed at that level's size and the previous result is upsampled as the start.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..backbones import EDGE_PAD, FeatureExtractor, get_spec, min_side
from ..color import combine_luminance, luminance_rgb, match_color, match_luminance, match_palette
from ..errors import SettingError, UserError
from ..events import Event, Preview, Run, guarded
from ..images import (
    Picture,
    as_image,
    check_output_path,
    header,
    load_image,
    refuse_output_over_inputs,
    save_image,
    take_in,
    to_image,
    to_tensor,
)
from ..objectives import ContentLoss, Objective, StyleLoss, Term, TVLoss, loss_defaults
from ..objectives.dream import DreamLoss, DreamTarget, parse_targets, resolve_channels
from ..optimize import INITS, check_settings, coarse_to_fine, optimize_image, pyramid_sizes, split_iterations
from ..optimize.memory import check_fits
from ..settings import StylizeSettings, as_params, parse_taps
from .session import Session, check_weights_file, keep_image

ImageLike = str | os.PathLike | Image.Image

# A --dream weight of 1 means this much beside style_weight 1e3: a visible but light dream (chosen by eye).
DREAM_SCALE = 100.0


@dataclass
class Prepared:
    """A checked stylize run, ready to go: inputs loaded, defaults resolved, the network built."""

    settings: StylizeSettings
    content: Picture
    styles: list[Picture]
    blend: list[float]
    masks: list[Image.Image] | None
    init_image: Image.Image | None
    style_taps: dict[str, float]
    content_taps: dict[str, float]
    dream_targets: list[DreamTarget]
    weights: dict[str, float]  # content, style, tv: resolved
    iterations: int
    smooth: str
    style_loss: str
    session: Session
    extractor: FeatureExtractor
    output: Path | None
    params: dict[str, Any]
    sizes: list[int] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)

    @property
    def device(self) -> torch.device:
        return self.session.device


def _style_blend(blend: Sequence[float] | None, count: int) -> list[float]:
    """Each painting's share of the style (equal shares by default)."""
    shares = [1.0] * count if blend is None else [float(b) for b in blend]
    if len(shares) != count:
        raise SettingError("style_blend", f"has {len(shares)} values for {count} style images; "
                           "give one per style image")
    if sum(shares) <= 0:
        raise SettingError("style_blend", "values must not all be 0")
    return shares


def _init_image(init: str) -> Image.Image:
    """The starting image given as a file (the other starts are names in INITS)."""
    try:
        exists = Path(init).exists() or Path(init).is_symlink()
    except OSError:  # a name too long for the file system: load_image says so
        exists = True
    if not exists:
        raise SettingError("init", f"must be one of {', '.join(INITS)} or an image file; '{init}' is neither")
    return load_image(init)


def prepare(content: ImageLike, styles: ImageLike | Sequence[ImageLike], settings: StylizeSettings,
            output: str | os.PathLike | None = None) -> Prepared:
    """Check everything and load the inputs and the network; nothing slow has run yet."""
    s = settings
    spec = get_spec(s.model)
    knobs = loss_defaults(spec)
    weights = {k: float(knobs[k] if getattr(s, k) is None else getattr(s, k))
               for k in ("content_weight", "style_weight", "tv_weight")}
    iterations = int(knobs["iterations"] if s.iterations is None else s.iterations)
    smooth = str(knobs["smooth"] if s.smooth is None else s.smooth)
    style_loss = str(knobs["style_loss"] if s.style_loss is None else s.style_loss)
    check_settings(s.optimizer, s.lr, s.ema)
    out_path = check_output_path(output) if output is not None else None
    if s.save_every and out_path is None:
        raise SettingError("save_every", "needs an output path to name the intermediate images after")
    style_list = [styles] if isinstance(styles, (str, os.PathLike, Image.Image)) else list(styles)
    mask_list = [] if s.masks is None else [s.masks] if isinstance(s.masks, (str, os.PathLike, Image.Image)) \
        else list(s.masks)
    if out_path is not None:  # before any work: a result written over the only copy of a photo is lost data
        refuse_output_over_inputs(out_path, [content, *style_list, None if s.init in INITS else s.init,
                                             *mask_list])
    check_weights_file(s.weights)
    if not style_list:
        raise UserError("give at least one style image")
    blend = _style_blend(s.style_blend, len(style_list))
    style_taps = parse_taps(s.style_layers, "style_layers") or dict(spec.style_taps)
    content_taps = parse_taps(s.content_layers, "content_layers") or dict(spec.content_taps)
    dream_targets = resolve_dream_targets(s.dream, s.model, [*style_taps, *content_taps], s.force)
    all_taps = [*style_taps, *content_taps, *(t.tap for t in dream_targets)]
    need = min_side(spec, all_taps)  # also checks every tap name, without building anything
    init_image = None if s.init in INITS else _init_image(s.init)
    photo = take_in(content, "content")  # each input taken in once, then handed down
    paintings = [take_in(x, "style") for x in style_list]
    masks = _load_masks(s.masks, photo.image, len(style_list))
    sizes = pyramid_sizes(s.size, int(knobs["pyramid_start"])) if s.pyramid else [s.size]
    sizes = sizes[-iterations:]  # at least one step per level
    _check_big_enough(photo, paintings, sizes, s.style_scale, need, s.model)

    session = Session.open(s, all_taps, s.pooling)
    device, precision = session.device, session.precision
    extractor = session.backbone.extractor(all_taps, pad=EDGE_PAD if s.edge_pad else 0)
    _check_memory(extractor, photo, paintings, s.size, s.style_scale, device, s.model)

    params = header("stylize", content=photo.name, styles=[pic.name for pic in paintings],
                    **as_params(s, style_blend=blend, **weights, style_layers=style_taps, content_layers=content_taps,
                                smooth=smooth, style_loss=style_loss, iterations=iterations, precision=precision,
                                dream=[str(t) for t in dream_targets] or None))
    return Prepared(s, photo, paintings, blend, masks, init_image, style_taps,
                    content_taps, dream_targets, weights, iterations, smooth, style_loss, session, extractor, out_path,
                    params, sizes, split_iterations(iterations, sizes, float(knobs["level_power"])))


@dataclass
class _Level:
    """One level of the coarse-to-fine run: the photo at this size (as the network sees it), the paintings
    at their size, the objective, and the dream targets with their channels chosen."""

    content: torch.Tensor
    seen_content: torch.Tensor
    styles: list[torch.Tensor]
    objective: Objective
    dream_targets: list[DreamTarget]
    terms: list[tuple[Term, float]]  # content, style, tv (and dream): re-bound at the next level


def run(p: Prepared, events: Run, *, content: Image.Image | None = None, init: Image.Image | None = None,
        extra_terms: Sequence[tuple[Term, float]] = (), schedule: tuple[list[int], list[int]] | None = None
        ) -> Image.Image:
    """Optimize coarse to fine; report each step to ``events``. Ctrl-C, SIGTERM or cancellation keep the
    best image so far (saved to the output) and raise :class:`~dreamstyle.events.Interrupted`.

    The prepared run can be called again with another ``content`` photo of the same size (video's frames),
    a starting image ``init`` in place of the settings' start, ``extra_terms`` for the objective (video's
    temporal loss) and a ``schedule`` of (sizes, steps) in place of the prepared one. ``p`` is not changed.
    """
    started = time.perf_counter()
    s = p.settings
    photo = p.content if content is None else take_in(content, "content")
    sizes, steps = (p.sizes, p.steps) if schedule is None else schedule
    params = dict(p.params)  # this call's parameters: the prepared ones, and what this run found
    events.expect(sum(steps))
    torch.manual_seed(s.seed)
    state: dict[str, Any] = {"current": None, "finish": to_image}

    def keep() -> tuple[Image.Image, Path | None]:
        image = state["finish"](state["current"]) if state["current"] is not None else photo.image
        return keep_image(events, image, p.output, params, started)

    if s.save_every and p.output is not None:
        events.subscribe(_saver(p.output, params), s.save_every)
    p.session.govern(events)
    with guarded(events, keep):
        pyramid = _Pyramid(p, photo, events, init, list(extra_terms), state, params)
        result = coarse_to_fine(pyramid, sizes, steps)
        image = state["finish"](result)  # the top level's finisher (its colour preservation), set by the run
        params.update(final_loss=pyramid.loss, seconds=round(time.perf_counter() - started, 2))
        image.info["dreamstyle"] = params
        path = save_image(image, p.output, params) if p.output is not None else None
    events.finish(image, path, params)
    return image


class _Pyramid:
    """Stylize's levels for the schedule driver: the terms built on the first level and re-bound at each next
    one, a level's start, and the optimizer's run there. ``state`` holds what an interruption keeps."""

    def __init__(self, p: Prepared, photo: Picture, events: Run, init: Image.Image | None,
                 extra_terms: list[tuple[Term, float]], state: dict[str, Any], params: dict[str, Any]) -> None:
        self.p, self.photo, self.events, self.init, self.extra_terms = p, photo, events, init, extra_terms
        self.state, self.params = state, params
        self.dream_targets, self.loss = p.dream_targets, math.inf
        self.terms: list[tuple[Term, float]] | None = None

    def bind(self, size: int) -> _Level:
        level = _level(self.p, self.photo, size, self.dream_targets, self.terms, self.extra_terms)
        if self.terms is None and self.dream_targets:  # channels chosen once, on the content, kept through levels
            self.dream_targets = level.dream_targets
            self.params["dream"] = [str(t) for t in self.dream_targets]
        self.terms = level.terms
        return level

    def start(self, level: _Level, below: torch.Tensor | None) -> torch.Tensor:
        self.state["current"] = _level_start(self.p, level, below, self.init)
        self.state["finish"] = _finisher(self.p.settings.preserve_color, level.content)
        return self.state["current"]

    def optimize(self, level: _Level, start: torch.Tensor, steps: int) -> torch.Tensor:
        self.state["current"], self.loss = _optimize_level(self.p, level, self.state, steps, self.events)
        return self.state["current"]


def _level(p: Prepared, photo: Picture, size: int, dream_targets: list[DreamTarget],
           terms: list[tuple[Term, float]] | None, extra_terms: list[tuple[Term, float]]) -> _Level:
    """The photo and the paintings at this level's size, their features, and the objective there: the
    ``terms`` of the level below re-bound to these targets, or on the first level (None) new terms, with
    the dream targets' channels chosen on the photo."""
    s, dev = p.settings, p.device
    content_t = photo.tensor(size, dev)
    h, w = content_t.shape[-2:]
    seen_content = content_t
    style_ts = [painting.tensor(max(1, round(size * s.style_scale)), dev) for painting in p.styles]
    if s.preserve_color == "luminance":
        seen_content = luminance_rgb(content_t)
        style_ts = [match_luminance(x, content_t) for x in style_ts]
    elif s.preserve_color == "match":
        style_ts = [match_color(x, content_t) for x in style_ts]
    with torch.no_grad():
        content_feats = p.extractor(seen_content)
        style_feats = [p.extractor(x) for x in style_ts]
    masks = None if p.masks is None else [_mask_tensor(m, w, h, dev, p.extractor.margin(h, w)) for m in p.masks]
    if terms is None:
        terms = [(ContentLoss(p.content_taps, content_feats), p.weights["content_weight"]),
                 (StyleLoss(p.style_taps, style_feats, p.blend, p.style_loss, masks, p.smooth),
                  p.weights["style_weight"]),
                 (TVLoss(), p.weights["tv_weight"])]
        if dream_targets:
            dream_targets = resolve_channels(dream_targets, content_feats)
            # measured relative to the content's own activation, so a weight means the same at every level
            terms.append((DreamLoss(dream_targets, reference=content_feats), DREAM_SCALE))
    else:
        for term, _ in terms:
            if isinstance(term, StyleLoss):
                term.bind(style_feats, masks)
            elif isinstance(term, (ContentLoss, DreamLoss)):
                term.bind(content_feats)
    return _Level(content_t, seen_content, style_ts, Objective([*terms, *extra_terms]), dream_targets, terms)


def _level_start(p: Prepared, level: _Level, current: torch.Tensor | None, init: Image.Image | None) -> torch.Tensor:
    """Where a level starts: the first from ``init`` or the settings' start, each later one from the level
    below, upsampled."""
    if current is not None:
        h, w = level.content.shape[-2:]
        return F.interpolate(current, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
    how = p.settings.init if init is None else "image"
    start = _initial_image(how, p.init_image if init is None else init, level.seen_content, level.styles, p.blend)
    if p.settings.preserve_color == "luminance":
        start = luminance_rgb(start)
    return start


def _optimize_level(p: Prepared, level: _Level, state: dict[str, Any], steps: int,
                    events: Run) -> tuple[torch.Tensor, float]:
    """Run the optimizer at one level from ``state['current']``; report each step (with a preview on demand)."""
    s, finish = p.settings, state["finish"]
    h, w = level.content.shape[-2:]

    def loss_fn(x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return level.objective(p.extractor(x), x)

    def on_step(step: int, loss: float, parts: dict[str, float], image: torch.Tensor) -> None:
        state["latest"] = image
        events.step(f"{w}x{h}", loss, parts, preview=lambda: finish(state["latest"]))

    result = optimize_image(state["current"], loss_fn, steps, s.optimizer, s.lr, on_step, average=s.ema)
    if result.interrupted:
        state["current"] = result.image
        raise result.stop or KeyboardInterrupt()
    return result.image, result.loss


# --- helpers -------------------------------------------------------------------------------------


def _saver(output: Path, params: dict[str, Any]) -> Callable[[Event], None]:
    """The ``save_every`` subscriber: each preview it is sent is saved as OUT.NNNNN.png."""
    def save(event: Event) -> None:
        if isinstance(event, Preview):
            save_image(event.image, output.with_name(f"{output.stem}.{event.step:05d}{output.suffix}"), params)
    return save


def _finisher(preserve_color: str, content_t: torch.Tensor) -> Callable[[torch.Tensor], Image.Image]:
    def finish(x: torch.Tensor) -> Image.Image:
        """What the user sees: in luminance mode, the result's luminance in the content's colours."""
        if preserve_color == "luminance":
            x = combine_luminance(x, content_t)
        return to_image(x)
    return finish


def resolve_dream_targets(dream: Sequence[str] | str | None, model: str, used: Sequence[str],
                          force: bool) -> list[DreamTarget]:
    """``dream`` targets for stylize. ``auto`` picks the backbone's dream tap that style and content
    don't use; a tap they do use gets a warning (the optimizer would undo the dream there) unless ``force``."""
    if dream is None:
        return []
    items = [dream] if isinstance(dream, (str, int, float)) else list(dream)
    items = [f"auto={t}" if isinstance(t, (int, float)) or _is_number(t) else t for t in items]  # --dream 2
    targets = parse_targets(items, model, "dream", avoid=used)
    overlap = sorted({t.tap for t in targets} & set(used))
    if overlap and not force:
        warnings.warn(f"--dream on {', '.join(overlap)}, which the style/content losses also use: they will "
                      "pull against the dream. Use another tap (see `dreamstyle layers`), or --force to keep it",
                      stacklevel=3)
    return targets


def _is_number(text: object) -> bool:
    try:
        float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def _check_big_enough(content: Picture, styles: list[Picture], sizes: list[int], style_scale: float,
                      need: int, model: str) -> None:
    """Every image the network will see must reach the deepest tap used: refuse up front, in one line."""
    smallest = sizes[0]
    if content.short_side(smallest) < need:
        raise SettingError("size", f"gives an image of {content.short_side(smallest)} px on its short side at "
                           f"{smallest} px, too small for {model}, whose taps need at least {need} px; "
                           "use a larger size")
    for painting in styles:
        side = painting.short_side(max(1, round(smallest * style_scale)))
        if side < need:
            raise SettingError("style_scale", f"makes a style image {side} px on its short side, too small for "
                               f"{model}, whose taps need at least {need} px; use a larger size or style_scale")


def _check_memory(extractor: torch.nn.Module, content: Picture, styles: list[Picture], size: int,
                  style_scale: float, device: torch.device, model: str) -> None:
    """Refuse up front, naming the largest size that fits, when the run would not fit in memory."""
    check_fits(extractor, content.image, size, device, f"of {size} px with {model}", "a lighter {model}")

    def scale_fix(side: int) -> str:  # the largest style side that fits, as a --style-scale
        scale = math.floor(side / size * 100) / 100
        if side < 16 or scale <= 0:
            return "use a smaller {size}"
        return f"use {{style_scale}} {scale:g} or less, or a smaller {{size}}"

    for painting in styles:  # the style's features are taken without gradients, but at size x style_scale
        check_fits(extractor, painting.image, max(1, round(size * style_scale)), device,
                   f"of {style_scale:g} at {{size}} {size}", "a smaller {size}", setting="style_scale",
                   backward=False, suggest=scale_fix)


def _load_masks(masks: Sequence[ImageLike] | None, content: Image.Image, count: int) -> list[Image.Image] | None:
    """One grayscale mask per style image, with the content's aspect ratio (white: that style goes here)."""
    if masks is None:
        return None
    masks = [masks] if isinstance(masks, (str, os.PathLike, Image.Image)) else list(masks)
    if len(masks) != count:
        raise SettingError("masks", f"has {len(masks)} masks for {count} style images; give one mask per style, "
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
    resized = mask.resize((w, h), Image.Resampling.BILINEAR)
    m = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0)[None, None].to(device)
    return F.pad(m, (pad, pad, pad, pad), mode="reflect") if pad else m


def _initial_image(init: str, init_image: Image.Image | None, content: torch.Tensor,
                   styles: list[torch.Tensor], blend: list[float]) -> torch.Tensor:
    """The starting image at the content's size: the content recoloured to the paintings' blended palette,
    the content, noise, the (first) style, or a file."""
    h, w = content.shape[-2:]
    style = styles[0]
    if init == "palette":
        return match_palette(content, styles, blend)
    if init == "content":
        return content.clone()
    if init == "noise":
        return torch.rand(content.shape, device=content.device)
    if init == "style":
        return F.interpolate(style, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
    assert init_image is not None
    return to_tensor(init_image.resize((w, h), Image.Resampling.LANCZOS)).to(content.device)
