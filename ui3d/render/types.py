"""Types shared by every renderer (analytic sphere tracer, volume renderer, Gaussian rasteriser)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import torch
from torch import Tensor

__all__ = ["RenderOutput"]


@dataclass
class RenderOutput:
    """What a renderer returns for a batch of B cameras at H x W pixels (row 0 at the top).

    rgb:    [B, H, W, 3] in [0, 1], already composited over the background.
    alpha:  [B, H, W, 1] in [0, 1], coverage / accumulated opacity.
    depth:  [B, H, W, 1] distance from the camera centre along the (unit) ray, averaged over the
            covered part of the pixel; 0 where alpha is 0.
    normal: [B, H, W, 3] world-space unit normals pointing out of the surface; 0 where alpha is 0.
    """

    rgb: Tensor
    alpha: Tensor
    depth: Tensor
    normal: Tensor

    def __post_init__(self) -> None:
        b, h, w, c = self.rgb.shape
        assert c == 3, self.rgb.shape
        assert self.alpha.shape == (b, h, w, 1), self.alpha.shape
        assert self.depth.shape == (b, h, w, 1), self.depth.shape
        assert self.normal.shape == (b, h, w, 3), self.normal.shape

    def __len__(self) -> int:
        return self.rgb.shape[0]

    def __getitem__(self, index: Union[int, slice, Tensor]) -> "RenderOutput":
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return RenderOutput(self.rgb[index], self.alpha[index], self.depth[index], self.normal[index])

    def to(self, device: Union[str, torch.device]) -> "RenderOutput":
        return RenderOutput(
            self.rgb.to(device), self.alpha.to(device), self.depth.to(device), self.normal.to(device)
        )

    def detach(self) -> "RenderOutput":
        return RenderOutput(self.rgb.detach(), self.alpha.detach(), self.depth.detach(), self.normal.detach())

    def channels_first(self) -> Tensor:
        """rgb as [B, 3, H, W], the layout image models take."""
        return self.rgb.permute(0, 3, 1, 2).contiguous()
