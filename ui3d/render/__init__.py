"""Renderers and the types they share."""

from ui3d.render.background import Background, BackgroundConfig, make_background
from ui3d.render.shading import SHADING_MODES, ShadingConfig, pick_shading, shade
from ui3d.render.types import RenderOutput
from ui3d.render.volume import (
    OccupancyGrid,
    RaySamples,
    accumulate,
    nerfacc_available,
    ray_aabb,
    render_weights,
    stratified_samples,
)

__all__ = [
    "SHADING_MODES",
    "Background",
    "BackgroundConfig",
    "OccupancyGrid",
    "RaySamples",
    "RenderOutput",
    "ShadingConfig",
    "accumulate",
    "make_background",
    "nerfacc_available",
    "pick_shading",
    "ray_aabb",
    "render_weights",
    "shade",
    "stratified_samples",
]
