"""Ground truth of built-in prompts: occupancy, surface samples, per-part colours.

Everything accepts a prompt string, a parsed :class:`WorldPrompt` or a :class:`WorldObject`.
Grids use cell centres ``-bound + (i + 0.5) * 2 * bound / resolution`` along each axis and are
indexed ``[x, y, z]`` (``torch.meshgrid(..., indexing="ij")``). The colour of a surface point is
the colour of the part whose SDF is smallest there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import torch
from torch import Tensor

from ui3d.world.captions import WorldPrompt, parse_prompt
from ui3d.world.objects import WorldObject
from ui3d.world.sdf import gradient_normals
from ui3d.world.threads import DEFAULT_CPU_THREADS, limit_cpu_threads

__all__ = [
    "Subject",
    "SurfaceSamples",
    "as_world_object",
    "grid_coordinates",
    "grid_points",
    "sdf_grid",
    "occupancy_grid",
    "surface_samples",
    "colour_at",
    "part_colours",
]

Subject = Union[str, WorldPrompt, WorldObject]


def as_world_object(subject: Subject) -> WorldObject:
    if isinstance(subject, WorldObject):
        return subject
    if isinstance(subject, WorldPrompt):
        return subject.to_object()
    if isinstance(subject, str):
        return parse_prompt(subject).to_object()
    raise ValueError(
        f"subject: expected a prompt, a WorldPrompt or a WorldObject, got {type(subject).__name__}"
    )


def grid_coordinates(resolution: int, bound: float = 1.0) -> Tensor:
    """Cell-centre coordinates along one axis, [resolution]."""
    if resolution <= 0 or bound <= 0:
        raise ValueError(f"resolution and bound: expected positive values, got {resolution}, {bound}")
    return (torch.arange(resolution, dtype=torch.float32) + 0.5) * (2.0 * bound / resolution) - bound


def grid_points(resolution: int, bound: float = 1.0) -> Tensor:
    """All cell centres, [R, R, R, 3] indexed [x, y, z]."""
    c = grid_coordinates(resolution, bound)
    return torch.stack(torch.meshgrid(c, c, c, indexing="ij"), dim=-1)


@torch.no_grad()
def sdf_grid(subject: Subject, resolution: int = 64, bound: float = 1.0, chunk: int = 1 << 18) -> Tensor:
    """Signed distances at the cell centres, [R, R, R] (float32)."""
    obj = as_world_object(subject)
    pts = grid_points(resolution, bound).reshape(-1, 3)
    out = torch.empty(pts.shape[0])
    with limit_cpu_threads(DEFAULT_CPU_THREADS):
        for i in range(0, pts.shape[0], chunk):
            out[i : i + chunk] = obj.sdf(pts[i : i + chunk])
    return out.reshape(resolution, resolution, resolution)


def occupancy_grid(subject: Subject, resolution: int = 64, bound: float = 1.0) -> Tensor:
    """Inside-ness of each cell centre, bool [R, R, R] indexed [x, y, z] (cell side 2*bound/R)."""
    return sdf_grid(subject, resolution, bound) < 0


@dataclass
class SurfaceSamples:
    """Points on the surface with outward unit normals, RGB colours and part indices."""

    points: Tensor  # [N, 3]
    normals: Tensor  # [N, 3]
    colours: Tensor  # [N, 3]
    part: Tensor  # [N] index into obj.shape.parts


@torch.no_grad()
def surface_samples(
    subject: Subject,
    n: int,
    generator: torch.Generator,
    shell: float = 0.01,
    batch: int = 1 << 15,
) -> SurfaceSamples:
    """About uniformly distributed surface points: uniform points in the object's bounding cube
    within ``shell`` of the surface (a thin shell has volume ~ area * 2 * shell), projected onto
    the surface along the SDF gradient (points that do not land within 1e-4, or that have solid on
    both sides, are dropped).
    Deterministic given the generator state."""
    if n <= 0:
        raise ValueError(f"n: expected a positive number of samples, got {n}")
    obj = as_world_object(subject)
    with limit_cpu_threads(DEFAULT_CPU_THREADS):
        pts = _shell_points(obj, n, generator, shell, batch)
        normals = gradient_normals(obj.sdf, pts, 1e-4)
    part = obj.shape.part_index(pts)
    colours = obj.part_rgb()[part]
    return SurfaceSamples(points=pts, normals=normals, colours=colours, part=part)


def _shell_points(obj: WorldObject, n: int, generator: torch.Generator, shell: float, batch: int) -> Tensor:
    r = obj.shape.bound_radius + 0.02
    kept: list[Tensor] = []
    count, tried = 0, 0
    for _ in range(1000):
        cand = (torch.rand(batch, 3, generator=generator) * 2.0 - 1.0) * r
        pts = cand[obj.sdf(cand).abs() < shell]
        for _ in range(3):  # Newton projection onto the zero level set
            pts = pts - obj.sdf(pts)[:, None] * gradient_normals(obj.sdf, pts, 1e-4)
        # drop the few points that did not converge (on creases and medial axes the gradient is
        # undefined); this slightly under-samples sharp concave creases
        pts = pts[obj.sdf(pts).abs() < 1e-4]
        # and those on faces where two parts merely touch (solid on both sides)
        pts = pts[obj.sdf(pts + 2e-3 * gradient_normals(obj.sdf, pts, 1e-4)) > 0]
        kept.append(pts)
        count, tried = count + pts.shape[0], tried + batch
        if count >= n:
            return torch.cat(kept)[:n]
        # size the next batch from the acceptance rate so far
        batch = int(min(1 << 18, max(4096, 1.2 * (n - count) * tried / max(count, 1))))
    raise RuntimeError(f"surface_samples: found only {count} of {n} points near the surface of {obj.name}")


@torch.no_grad()
def colour_at(subject: Subject, points: Tensor) -> Tensor:
    """Ground-truth RGB at points [N, 3] (the colour of the nearest part), [N, 3]."""
    obj = as_world_object(subject)
    return obj.part_rgb().to(points)[obj.shape.part_index(points)]


def part_colours(subject: Subject) -> dict[str, tuple[float, float, float]]:
    """Part name -> RGB of the subject's parts."""
    return as_world_object(subject).part_colours()
