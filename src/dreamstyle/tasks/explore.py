"""``dreamstyle explore``: see what the channels of one tap respond to.

Two modes, both ending in a labelled grid with one cell per channel:

* feature visualization (no image): an image is optimized from noise for each channel so that the
  channel's mean activation is as high as possible. To get features rather than adversarial noise it
  uses the recipe of Olah et al. 2017, "Feature Visualization": the image lives in a decorrelated
  space (a Fourier spectrum scaled by 1/frequency, and decorrelated colours), goes through a sigmoid
  to [0, 1], and is randomly shifted, scaled and rotated at every step (transformation robustness).
  All channels are optimized together as one batch: item i excites channel i.
* image mode: one photo goes through the network; the channels with the highest mean activation (or
  the given ones) are shown as heat maps over the photo.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..backbones import FeatureExtractor, min_side
from ..errors import SettingError, UserError
from ..events import Run, guarded
from ..images import (
    as_image,
    check_output_path,
    grid,
    header,
    refuse_output_over_inputs,
    resized_tensor,
    save_image,
    short_side,
    to_image,
)
from ..optimize.loop import descend
from ..optimize.memory import check_fits
from ..settings import ExploreSettings, as_params
from .session import Session, check_weights_file, keep_image

MAX_CELLS = 64  # channels per grid
FEATURE_SIZE = 128  # default cell size of feature visualizations
IMAGE_SIZE = 256  # default long side of the photo in image mode

# Feature-visualization settings, tuned by eye on efficientnet_lite0 at 128 px (see the module docstring).
LR = 0.1  # Adam, on the Fourier coefficients
INIT_SD = 0.01  # of the Fourier coefficients at the start
DECAY = 1.0  # spectrum scaled by 1 / frequency ** DECAY
CUTOFF = 0.35  # cycles per pixel: a Gaussian roll-off damps the 2-3 px hatching of stride-2 layers
JITTER = 1 / 16  # random shift, as a fraction of the image side
SCALE = 0.1  # random zoom in [1 - SCALE, 1 + SCALE]
ANGLE = 10.0  # random rotation in degrees, +-

# Square root of the colour correlation of ImageNet pixels (Lucid's), columns normalized to at most 1:
# the optimizer works in decorrelated colour space, so one step does not change all three channels alike.
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
_COLOR_SQRT = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()

# Heat-map colours (an inferno-like ramp from black through red and orange to pale yellow).
_HEAT = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66],
                  [245, 125, 21], [250, 193, 39], [252, 255, 164]], dtype=np.float32) / 255.0


# --- parametrization -----------------------------------------------------------------------------

class FourierImage(torch.nn.Module):
    """A batch of ``n`` RGB images of ``size`` x ``size`` as Fourier coefficients in decorrelated colour.

    Each frequency's coefficient is multiplied by 1/frequency, so equal steps on every parameter give
    the 1/f spectrum of natural images instead of pixel noise; ``forward()`` returns images in [0, 1].
    """

    def __init__(self, n: int, size: int, generator: torch.Generator, device: torch.device) -> None:
        super().__init__()
        self.size = size
        fy = torch.fft.fftfreq(size)[:, None]
        fx = torch.fft.rfftfreq(size)[None, :]
        freqs = (fx * fx + fy * fy).sqrt()
        scale = size / freqs.clamp(min=1.0 / size) ** DECAY
        scale = scale * torch.exp(-(freqs / CUTOFF) ** 2)
        self.scale: torch.Tensor
        self.color: torch.Tensor
        self.register_buffer("scale", scale.to(device))
        self.register_buffer("color", _COLOR_SQRT.to(device))
        init = torch.randn(n, 3, size, size // 2 + 1, 2, generator=generator) * INIT_SD
        self.spectrum = torch.nn.Parameter(init.to(device))

    def forward(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        img = torch.fft.irfft2(spectrum, s=(self.size, self.size)) / 4.0
        img = F.conv2d(img, self.color[:, :, None, None])  # out[d] = sum over c of color[d, c] * img[c]
        return torch.sigmoid(img)


# --- transformation robustness -------------------------------------------------------------------

def random_transform(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Shift, zoom and rotate each image of the batch at random (one bilinear resample, mirrored edges)."""
    n = images.shape[0]
    u = torch.rand(n, 4, generator=generator) * 2 - 1  # uniform in [-1, 1]
    angle = u[:, 0] * math.radians(ANGLE)
    zoom = 1 + u[:, 1] * SCALE
    shift = u[:, 2:] * 2 * JITTER  # affine_grid's coordinates span 2 per image side
    cos, sin = angle.cos() / zoom, angle.sin() / zoom
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


# --- the two modes -------------------------------------------------------------------------------

def visualize_channels(extractor: FeatureExtractor, tap: str, channels: Sequence[int], size: int = 128,
                       iterations: int = 96, seed: int = 0, events: Run | None = None,
                       state: dict | None = None) -> torch.Tensor:
    """Optimize one image per channel to excite it; returns a (len(channels), 3, size, size) batch in [0, 1].

    ``state['images']`` (if given) always holds a callable that renders the pictures so far.
    """
    device = extractor.mean.device
    events = events or Run("explore", iterations)
    generator = torch.Generator().manual_seed(seed)
    param = FourierImage(len(channels), size, generator, device)
    if state is not None:
        state["images"] = lambda: param().detach()
    optimizer = torch.optim.Adam(param.parameters(), lr=LR)
    index = torch.as_tensor(list(channels), device=device)
    rows = torch.arange(len(channels), device=device)

    def evaluate() -> tuple[torch.Tensor, dict[str, float]]:
        feats = extractor(random_transform(param(), generator))[tap]
        activation = feats[rows, index].mean(dim=(1, 2))  # item i's mean activation of channel i
        return -activation.sum(), {"activation": activation.mean().item()}

    descend(optimizer, evaluate, range(1, iterations + 1),
            lambda step, loss, parts: events.step(f"explore {tap}", -parts["activation"],
                                                  preview=None if state is None else state.get("preview")),
            fix="the network's weights may hold values that are not finite; try --precision fp32")
    with torch.no_grad():
        return param()


def feature_map(extractor: FeatureExtractor, tap: str, image: torch.Tensor) -> torch.Tensor:
    """The feature map of ``tap`` for a (1, 3, H, W) image, as (channels, h, w)."""
    with torch.no_grad():
        return extractor(image)[tap][0]


def heat_overlay(image: torch.Tensor, activation: torch.Tensor) -> Image.Image:
    """``image`` (1, 3, H, W) under one channel's (h, w) activation map as a heat map.

    The map is upsampled to the image, clipped at 0 and divided by its maximum, so each cell shows
    where its channel fires most; the photo is dimmed to grey where the channel is quiet.
    """
    h, w = image.shape[-2:]
    up = F.interpolate(activation[None, None].float().cpu(), size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    a = (up.clamp(min=0) / up.max().clamp(min=1e-8)).numpy()
    pos = a * (len(_HEAT) - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, len(_HEAT) - 2)
    frac = (pos - lo)[..., None]
    heat = _HEAT[lo] * (1 - frac) + _HEAT[lo + 1] * frac
    photo = image[0].detach().cpu().permute(1, 2, 0).numpy()
    grey = photo.mean(axis=2, keepdims=True)
    base = 0.35 * photo + 0.35 * grey  # dimmed, half desaturated
    alpha = (0.15 + 0.7 * a)[..., None]  # the photo shows through even where the channel peaks
    out = base * (1 - alpha) + heat * alpha
    return Image.fromarray((np.clip(out, 0, 1) * 255).round().astype(np.uint8))


# --- the entry point -----------------------------------------------------------------------------

def _check_memory(extractor: FeatureExtractor, photo: Image.Image | None, size: int, cells: int,
                  device: torch.device) -> None:
    """Refuse before any work when the grid's optimization (a batch of ``cells``) or the photo's pass
    would not fit in memory."""
    if photo is None:
        check_fits(extractor, Image.new("RGB", (size, size)), size, device, f"of {size} px for {cells} channels",
                   "explore fewer channels ({count})", batch=cells)
    else:
        check_fits(extractor, photo, size, device, f"of {size} px", "a smaller {size}", backward=False)


def explore(settings: ExploreSettings, output: str | os.PathLike | None = None,
            events: Run | None = None) -> Image.Image:
    """A labelled grid, one cell per channel of ``tap``: what excites it, or where it fires in ``image``.

    Without ``image``, each cell is an image optimized for ``iterations`` steps to excite its channel
    (``size`` x ``size`` pixels, default 128). With ``image``, the photo (long side resized to ``size``,
    default 256) goes through the network once, and each cell shows one channel's activation map over
    it, labelled with its mean activation. The channels are ``channels`` if given, else the first
    ``count`` channels of the tap (without image) or the ``count`` most active ones (with image); at
    most 64. ``output``, if given, is where the grid is saved, with the settings embedded.
    """
    s = settings
    tap, size, out_path, photo, image_name = _checked(s, output)

    session = Session.open(s, [tap])
    dev, backbone = session.device, session.backbone
    chosen, cells_wanted = _cells(s, backbone.resolve([tap])[0].channels, tap)
    extractor = backbone.extractor([tap])
    _check_memory(extractor, photo, size, cells_wanted, dev)

    params = header("explore", **as_params(s, model=backbone.name, size=size, image=image_name,
                                           iterations=s.iterations if photo is None else None),
                    mode="features" if photo is None else "image")
    events = events or Run("explore", 0)
    events.expect(s.iterations if photo is None else 1)
    session.govern(events)
    state: dict = {}
    labels: list[int] = []

    def cells_of(images: torch.Tensor) -> list[tuple[Image.Image, str]]:
        return [(to_image(img), f"{tap} ch {ch}") for img, ch in zip(images, labels)]

    def preview() -> Image.Image:  # the cells so far, as one sheet (previews while they grow, and a cancel's)
        with torch.no_grad():
            return grid(cells_of(state["images"]()), columns=math.ceil(math.sqrt(len(labels))))

    state["preview"] = preview

    def keep() -> tuple[Image.Image | None, Path | None]:
        return (None, None) if "images" not in state else keep_image(events, preview(), out_path, params,
                                                                       channels=labels)

    with guarded(events, keep):
        if photo is None:
            labels = chosen if chosen is not None else list(range(cells_wanted))
            images = visualize_channels(extractor, tap, labels, size, s.iterations, s.seed, events, state)
            cells = cells_of(images)
        else:
            x = resized_tensor(photo, size, dev)
            maps = feature_map(extractor, tap, x)
            means = maps.mean(dim=(1, 2))
            labels = chosen if chosen is not None else means.argsort(descending=True)[:cells_wanted].tolist()
            cells = [(heat_overlay(x, maps[ch]), f"{tap} ch {ch}\nmean {means[ch].item():.3g}") for ch in labels]
            events.step(f"explore {tap}", float(means.mean()))
        sheet = grid(cells, columns=math.ceil(math.sqrt(len(cells))))
        params["channels"] = labels
        path = save_image(sheet, out_path, params) if out_path is not None else None
    events.finish(sheet, path, params)
    return sheet


# --- checks --------------------------------------------------------------------------------------

def _checked(s: ExploreSettings, output: str | os.PathLike | None
             ) -> tuple[str, int, Path | None, Image.Image | None, str | None]:
    """The tap, the size, the output and the photo (if any) with its name: everything checked up front."""
    tap = s.tap
    if not tap:
        raise SettingError("tap", f"is missing: give the tap to explore, e.g. blocks.5; "
                           f"'dreamstyle layers {s.model}' lists them")
    from ..backbones import get_spec

    spec = get_spec(s.model)
    need = min_side(spec, [tap])  # checks the tap's name too
    size = s.size if s.size is not None else FEATURE_SIZE if s.image is None else IMAGE_SIZE
    out_path = check_output_path(output) if output is not None else None
    if out_path is not None:
        refuse_output_over_inputs(out_path, [s.image])
    check_weights_file(s.weights)
    photo, image_name = None, None
    if s.image is not None:
        photo = as_image(s.image, "image")[0]
        image_name = "<image>" if isinstance(s.image, Image.Image) else str(s.image)
    short = size if photo is None else short_side(photo, size)
    if short < need:
        raise SettingError("size", f"of {size} px is too small for tap {tap} of {s.model}, which needs at least "
                           f"{need} px on the short side; use a larger size")

    return tap, size, out_path, photo, image_name


def _cells(s: ExploreSettings, available: int, tap: str) -> tuple[list[int] | None, int]:
    """The channels asked for (None: chosen by the run) and how many cells the grid gets."""
    chosen = _check_channels(s.channels, available, tap) if s.channels is not None else None
    cells_wanted = len(chosen) if chosen is not None else min(s.count, available)
    if cells_wanted > MAX_CELLS:
        raise SettingError("channels", f"make {cells_wanted} cells, too big a grid; explore {MAX_CELLS} or fewer "
                           "at a time")
    return chosen, cells_wanted


def _check_channels(channels: Sequence[int], available: int, tap: str) -> list[int]:
    chosen = list(channels)
    if not chosen:
        raise SettingError("channels", "is empty; give channel numbers such as 0,5,12")
    for ch in chosen:
        if isinstance(ch, bool) or not isinstance(ch, (int, np.integer)) or not 0 <= ch < available:
            raise UserError(f"channel {ch!r} does not exist: tap {tap} has {available} channels, "
                            f"numbered 0 to {available - 1}")
    return [int(ch) for ch in chosen]
