"""Shading of composited albedo with composited normals (DreamFusion's modes).

- ``albedo``: the colour as it is;
- ``lambertian``: ``albedo * (ambient + diffuse * max(n . l, 0))`` with a point light;
- ``textureless``: the same with a white albedo (shape only).

The world's matte material uses ambient 0.35 and diffuse 0.75 (``ui3d.world.palette``); those are
the defaults, so a lambertian render of a correct scene matches the world's matte renders.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["SHADING_MODES", "ShadingConfig", "shade", "pick_shading"]

SHADING_MODES = ("albedo", "lambertian", "textureless")


@dataclass(frozen=True)
class ShadingConfig:
    ambient: float = 0.35
    diffuse: float = 0.75


def shade(
    albedo: Tensor,
    normal: Tensor,
    points: Tensor,
    light_pos: Tensor,
    mode: str = "albedo",
    cfg: ShadingConfig = ShadingConfig(),
) -> Tensor:
    """Shade per pixel: albedo, normal (unit), points [B, H, W, 3]; light_pos [B, 3]."""
    if mode not in SHADING_MODES:
        raise ValueError(f"shading: expected one of {', '.join(SHADING_MODES)}, got {mode!r}")
    if mode == "albedo":
        return albedo
    to_light = F.normalize(light_pos[:, None, None, :] - points, dim=-1)
    lambert = (normal * to_light).sum(-1, keepdim=True).clamp_min(0.0)
    light = cfg.ambient + cfg.diffuse * lambert
    if mode == "textureless":
        return light.expand_as(albedo).clamp(0.0, 1.0)
    return (albedo * light).clamp(0.0, 1.0)


def pick_shading(generator: torch.Generator, textureless_prob: float = 0.5) -> str:
    """DreamFusion's random shading after the albedo warm-up: lambertian or textureless."""
    return "textureless" if float(torch.rand(1, generator=generator)) < textureless_prob else "lambertian"
