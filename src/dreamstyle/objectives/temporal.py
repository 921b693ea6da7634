"""The temporal loss of video style transfer (Ruder et al. 2016): stay close to the previous frame's
result, warped onto this frame by the optical flow, on the pixels the flow can trust."""

from __future__ import annotations

import torch

from .base import Term


class TemporalLoss(Term):
    """Mean squared difference from ``target`` (1, 3, H, W), weighted per pixel by ``mask`` (1, 1, H, W) in
    [0, 1]: 0 where the flow is unreliable (occlusions, motion boundaries), so the frame is free there."""

    name = "temporal"

    def __init__(self, target: torch.Tensor, mask: torch.Tensor) -> None:
        super().__init__()
        self.bind(target, mask)

    def bind(self, target: torch.Tensor, mask: torch.Tensor) -> None:
        """The next frame's warped previous result and its trust mask."""
        self.target, self.mask = target, mask

    def forward(self, feats: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        if image.shape[-2:] != self.target.shape[-2:]:
            raise ValueError(f"the temporal target is {tuple(self.target.shape[-2:])}, the image "
                             f"{tuple(image.shape[-2:])}: they must match")
        return (self.mask * (image - self.target).pow(2)).mean()
