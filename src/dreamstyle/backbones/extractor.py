"""A loaded network and the multi-tap extractor that runs it once for every objective."""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx.experimental.optimization import fuse

from ..errors import UserError, check_choice
from ..runtime import autocast
from .discover import trace
from .pooling import use_avg_pooling
from .registry import DEFAULT_BACKBONE, POOLINGS, get_spec
from .spec import Tap
from .taps import resolve_taps
from .weights import load_model

# A mirrored margin around the image as the network sees it (2 px per 128, at most this). Without it
# stride-2 layers see the top row 1.8x and the bottom row 0.13x as strongly as the inside: a thin
# line of coloured noise grows along one edge and the opposite edge stays unstyled.
EDGE_PAD = 8


class FeatureExtractor(nn.Module):
    """RGB image in [0, 1] -> {tap name: fp32 feature map}.

    The traced graph keeps only what the requested taps depend on, so the network runs
    only as deep as the deepest tap. It runs in channels-last layout (25% faster on CPU in fp32)
    and under autocast when ``precision`` is bf16/fp16; the features come back in fp32 for Gram
    matrices and losses.
    """

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...], taps: list[Tap],
                 precision: str = "fp32", pad: int = 0) -> None:
        super().__init__()
        self.taps = taps
        # Frozen eval-mode BatchNorm is an affine map: fold it into the conv before it (~15% faster).
        self.graph = fuse(trace(model, dict.fromkeys(t.node for t in taps)), inplace=True, no_trace=True)
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.precision = precision
        self.pad = pad
        self.requires_grad_(False)

    def margin(self, height: int, width: int) -> int:
        """The mirrored margin around an image of this size: 2 px per 128 of its short side, at most ``pad``.

        Even, so stride-2 layers keep their phase; none below 128 px, where it would be a large share.
        """
        return min(self.pad, 2 * (min(height, width) // 128))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        pad = self.margin(*image.shape[-2:])
        if pad:  # mirrored margin: border pixels are seen by as many windows as inner ones
            image = F.pad(image, (pad, pad, pad, pad), mode="reflect")
        x = (image - self.mean) / self.std
        x = x.contiguous(memory_format=torch.channels_last)
        with autocast(x.device, self.precision):
            feats = self.graph(x)
        return {t.name: feats[t.node].float() for t in self.taps}


class Backbone:
    """A registry entry with its weights loaded, on a device, ready to hand out extractors."""

    def __init__(self, name: str = DEFAULT_BACKBONE, weights: str | os.PathLike | None = None,
                 device: torch.device | str = "cpu", precision: str = "fp32", pooling: str = "max") -> None:
        self.spec = get_spec(name)
        check_choice("pooling", pooling, POOLINGS)
        self.device = torch.device(device)
        self.precision = precision
        self.model = load_model(self.spec, weights)
        if pooling == "avg" and not use_avg_pooling(self.model):
            raise UserError(f"--pooling avg needs a network with max pooling; {name} has none")
        self.model = self.model.to(self.device)
        self.model = self.model.to(memory_format=torch.channels_last)

    @property
    def name(self) -> str:
        return self.spec.name

    def resolve(self, names: Iterable[str]) -> list[Tap]:
        return resolve_taps(self.spec, list(names))

    def extractor(self, names: Iterable[str], pad: int = 0) -> FeatureExtractor:
        """An extractor for the given tap names (duplicates are merged); ``pad``: a mirrored margin in pixels."""
        taps = self.resolve(dict.fromkeys(names))
        return FeatureExtractor(self.model, self.spec.mean, self.spec.std, taps, self.precision,
                                pad).to(self.device)
