"""Renderers and the types they share."""

from ui3d.render.gaussian_raster import (
    Projection,
    RasterConfig,
    RasterOutput,
    gsplat_available,
    project_gaussians,
    quat_to_rotmat,
    rasterize_gaussians,
)
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
    "Projection",
    "RasterConfig",
    "RasterOutput",
    "RaySamples",
    "RenderOutput",
    "ShadingConfig",
    "accumulate",
    "gsplat_available",
    "make_background",
    "nerfacc_available",
    "pick_shading",
    "project_gaussians",
    "quat_to_rotmat",
    "rasterize_gaussians",
    "ray_aabb",
    "render_weights",
    "shade",
    "stratified_samples",
]
