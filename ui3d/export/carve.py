"""Silhouette carving for mesh export: keep only what the scene's own renders show as solid.

A density level set alone does not match what a scene looks like: a Gaussian scene's summed
density reaches its threshold well inside the surface its renders show (overlapping,
semi-transparent Gaussians composite to an opaque silhouette long before their summed density
is high), and a NeRF keeps faint density outside it. So the exporter intersects the dense region
with the scene's **visual hull**: the points that project to a pixel of alpha >= 0.5 in every one
of many renders from all around (views spread evenly over the sphere on a Fibonacci spiral,
looking at the origin from far away). The hull decides the outline; the density carves what no
silhouette can (cavities, holes seen from nowhere) and keeps floaters' empty insides out.

As a field for marching cubes, the hull at a point is the smallest bilinearly interpolated alpha
over the views, so silhouette edges land between voxels, not on them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ui3d.cameras import Cameras, cameras_from_spherical, project_points

__all__ = ["fibonacci_directions", "carving_cameras", "silhouette_hull", "rendered_hull"]


def fibonacci_directions(count: int) -> tuple[Tensor, Tensor]:
    """Azimuths and elevations (degrees, [count]) spread evenly over the sphere (equal-area
    Fibonacci spiral), from near the top to near the bottom."""
    if count < 1:
        raise ValueError(f"carving views: expected >= 1, got {count}")
    i = torch.arange(count, dtype=torch.float64) + 0.5
    elevation = torch.rad2deg(torch.asin(1.0 - 2.0 * i / count))
    azimuth = torch.rad2deg(i * math.pi * (3.0 - math.sqrt(5.0))) % 360.0
    return azimuth.float(), elevation.float()


def carving_cameras(count: int, size: int, radius: float, distance: float) -> Cameras:
    """``count`` cameras at ``distance`` from the origin, spread over the sphere, whose square
    ``size``^2 images just hold a ball of ``radius`` at the origin (5 % margin)."""
    if not 0 < radius < distance:
        raise ValueError(f"carving cameras: expected 0 < radius < distance, got {radius} and {distance}")
    azimuth, elevation = fibonacci_directions(count)
    fovy = 2.0 * math.degrees(math.asin(radius / distance)) * 1.05
    return cameras_from_spherical(
        azimuth, elevation, torch.full((count,), float(distance)), torch.full((count,), fovy), size
    )


def silhouette_hull(alpha: Tensor, cams: Cameras, points: Tensor) -> Tensor:
    """The smallest alpha [N] that the points [N, 3] project to over the views (alpha [K, H, W],
    bilinear between pixel centres, clamped at the border). A point outside a view's frame or
    behind its camera gets no verdict from that view (1)."""
    out = torch.ones(points.shape[0], dtype=alpha.dtype, device=alpha.device)
    for k in range(len(cams)):
        uv, z = project_points(cams[k], points[None].to(cams.c2w.dtype))
        grid = torch.stack([2.0 * uv[..., 0] / cams.width - 1.0, 2.0 * uv[..., 1] / cams.height - 1.0], -1)
        seen = F.grid_sample(alpha[k][None, None], grid[:, None].to(alpha.dtype), mode="bilinear",
                             padding_mode="border", align_corners=False)[0, 0, 0]
        in_view = (grid[0].abs() <= 1.0).all(-1) & (z[0] > 0)
        out = torch.minimum(out, torch.where(in_view, seen, torch.ones_like(seen)))
    return out


@torch.no_grad()
def rendered_hull(scene, points: Tensor, views: int, size: int, radius: float, distance: float,
                  batch: int = 8) -> Tensor:
    """:func:`silhouette_hull` of the scene's own albedo renders (``scene.render``) from
    :func:`carving_cameras`, at the points [N, 3]."""
    dev = points.device
    cams = carving_cameras(views, size, radius, distance).to(dev)
    alphas = [scene.render(cams[i : i + batch], background=torch.zeros(3, device=dev), normals=False).alpha[..., 0]
              for i in range(0, views, batch)]
    return silhouette_hull(torch.cat(alphas).float(), cams, points)
