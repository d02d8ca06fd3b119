"""3D accuracy against the built-in world's ground truth.

- IoU of a mesh (voxelised by ray parity along z, so it needs a closed mesh) or of a boolean /
  thresholded density grid against :func:`ui3d.world.occupancy_grid` (same cell centres, indexed
  [x, y, z]), and the two numbers that say why it is low: the mesh's volume over the truth's, and
  the share of the truth inside the mesh (IoU = covered / (volume ratio + 1 − covered)): a cube
  drawn too large has covered ≈ 1 and volume ratio > 1, a misplaced shape a low covered;
- Chamfer distance between points sampled on the mesh and the true surface samples (mean of the two
  mean nearest-neighbour distances, in world units);
- colour error: for every true surface sample, the colour of the nearest mesh vertex against the
  true colour, as the mean absolute difference per channel (and the mean RGB distance).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

__all__ = [
    "GeometryMetrics",
    "iou",
    "volume_scores",
    "voxelize_mesh",
    "mesh_iou",
    "chamfer_distance",
    "colour_error",
    "evaluate_mesh",
]


def iou(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Intersection over union of two boolean grids of the same shape (1.0 if both are empty)."""
    a = np.asarray(a.cpu() if isinstance(a, Tensor) else a, dtype=bool)
    b = np.asarray(b.cpu() if isinstance(b, Tensor) else b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"iou: grids must have the same shape, got {a.shape} and {b.shape}")
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def volume_scores(ours: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(volume ratio, share of the truth covered) of two boolean grids of the same shape: |ours| /
    |truth| and |ours ∩ truth| / |truth| (both 0 for an empty truth)."""
    ours, truth = np.asarray(ours, dtype=bool), np.asarray(truth, dtype=bool)
    n = truth.sum()
    if n == 0:
        return 0.0, 0.0
    return float(ours.sum() / n), float(np.logical_and(ours, truth).sum() / n)


def voxelize_mesh(vertices: np.ndarray, faces: np.ndarray, resolution: int = 64, bound: float = 1.0) -> np.ndarray:
    """Inside-ness of the cell centres of a [-bound, bound]^3 grid, bool [R, R, R] indexed [x, y, z]:
    a centre is inside when a ray from it along +z crosses the surface an odd number of times."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    h = 2.0 * bound / resolution
    centres = -bound + (np.arange(resolution) + 0.5) * h
    tri = v[f]  # [F, 3, 3]
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    # columns (x_i, y_j) whose centre lies in the triangle's xy bounding box
    lo = np.floor((tri[:, :, :2].min(1) + bound) / h - 0.5).astype(np.int64) + 1
    hi = np.floor((tri[:, :, :2].max(1) + bound) / h - 0.5).astype(np.int64)
    lo, hi = np.clip(lo, 0, resolution - 1), np.clip(hi, -1, resolution - 1)
    nx, ny = hi[:, 0] - lo[:, 0] + 1, hi[:, 1] - lo[:, 1] + 1
    valid = (nx > 0) & (ny > 0)
    idx = np.nonzero(valid)[0]
    counts = (nx * ny)[idx]
    tri_id = np.repeat(idx, counts)
    start = np.cumsum(counts) - counts
    local = np.arange(counts.sum()) - np.repeat(start, counts)
    ix = lo[tri_id, 0] + local % nx[tri_id]
    iy = lo[tri_id, 1] + local // nx[tri_id]
    px, py = centres[ix], centres[iy]
    ta, tb, tc = a[tri_id], b[tri_id], c[tri_id]
    # 2-D barycentrics of (px, py) in the projected triangle (half-open edges: no double counts)
    d = (tb[:, 1] - tc[:, 1]) * (ta[:, 0] - tc[:, 0]) + (tc[:, 0] - tb[:, 0]) * (ta[:, 1] - tc[:, 1])
    ok = np.abs(d) > 1e-15
    d = np.where(ok, d, 1.0)
    l1 = ((tb[:, 1] - tc[:, 1]) * (px - tc[:, 0]) + (tc[:, 0] - tb[:, 0]) * (py - tc[:, 1])) / d
    l2 = ((tc[:, 1] - ta[:, 1]) * (px - tc[:, 0]) + (ta[:, 0] - tc[:, 0]) * (py - tc[:, 1])) / d
    l3 = 1.0 - l1 - l2
    inside = ok & (l1 >= 0) & (l2 >= 0) & (l3 >= 0)
    z = l1 * ta[:, 2] + l2 * tb[:, 2] + l3 * tc[:, 2]
    col = ix * resolution + iy
    col, z = col[inside], z[inside]
    # count crossings above each cell centre along the column
    order = np.lexsort((z, col))
    col, z = col[order], z[order]
    occ = np.zeros((resolution, resolution, resolution), dtype=bool)
    if col.size == 0:
        return occ
    # drop duplicate crossings (a ray through a shared edge hits both triangles)
    keep = np.ones(col.size, dtype=bool)
    keep[1:] = ~((col[1:] == col[:-1]) & (np.abs(z[1:] - z[:-1]) < 1e-9))
    col, z = col[keep], z[keep]
    bounds = np.searchsorted(col, np.arange(resolution * resolution + 1))
    for c in np.nonzero(np.diff(bounds))[0]:
        zs = z[bounds[c] : bounds[c + 1]]
        above = len(zs) - np.searchsorted(zs, centres, side="right")
        occ[c // resolution, c % resolution] = above % 2 == 1
    return occ


def mesh_iou(vertices: np.ndarray, faces: np.ndarray, truth: Tensor | np.ndarray, bound: float = 1.0) -> float:
    """IoU of a closed mesh against a ground-truth occupancy grid [R, R, R] over [-bound, bound]^3."""
    occ = voxelize_mesh(vertices, faces, int(truth.shape[0]), bound)
    return iou(occ, truth)


def _sample_on_mesh(vertices: np.ndarray, faces: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tri = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    pick = rng.choice(len(tri), size=n, p=area / area.sum())
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1
    u, v = np.where(flip, 1 - u, u), np.where(flip, 1 - v, v)
    t = tri[pick]
    return t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])


def chamfer_distance(vertices: np.ndarray, faces: np.ndarray, surface_points: Tensor | np.ndarray, n: int = 20000) -> float:
    """Symmetric Chamfer distance (mean of both mean nearest-neighbour distances, world units)."""
    truth = np.asarray(surface_points, dtype=np.float64)
    mine = _sample_on_mesh(vertices, faces, n)
    d1, _ = cKDTree(truth).query(mine)
    d2, _ = cKDTree(mine).query(truth)
    return float(0.5 * (d1.mean() + d2.mean()))


def colour_error(
    vertices: np.ndarray, vertex_colours: np.ndarray, surface_points: Tensor | np.ndarray, surface_colours: Tensor | np.ndarray
) -> tuple[float, float]:
    """(mean absolute error per channel, mean RGB distance) of the nearest vertex's colour at every
    true surface sample. Colours in [0, 1]."""
    cols = np.asarray(vertex_colours, dtype=np.float64)
    if cols.max() > 1.0 + 1e-6:
        cols = cols / 255.0
    _, nearest = cKDTree(np.asarray(vertices)).query(np.asarray(surface_points, dtype=np.float64))
    diff = cols[nearest, :3] - np.asarray(surface_colours, dtype=np.float64)
    return float(np.abs(diff).mean()), float(np.linalg.norm(diff, axis=1).mean())


@dataclass
class GeometryMetrics:
    iou: float
    chamfer: float
    colour_mae: float
    colour_rgb_distance: float
    volume_ratio: float  # mesh volume / true volume
    truth_covered: float  # share of the true volume inside the mesh

    def as_dict(self) -> dict[str, float]:
        return {
            "iou": self.iou,
            "volume_ratio": self.volume_ratio,
            "truth_covered": self.truth_covered,
            "chamfer": self.chamfer,
            "colour_mae": self.colour_mae,
            "colour_rgb_distance": self.colour_rgb_distance,
        }


def evaluate_mesh(vertices: np.ndarray, faces: np.ndarray, vertex_colours: np.ndarray, subject, resolution: int = 64, samples: int = 20000, seed: int = 0) -> GeometryMetrics:
    """All metrics of a coloured mesh against a built-in world subject (prompt or WorldObject)."""
    from ui3d.world.ground_truth import occupancy_grid, surface_samples

    truth = occupancy_grid(subject, resolution).numpy()
    surf = surface_samples(subject, samples, torch.Generator().manual_seed(seed))
    mae, dist = colour_error(vertices, vertex_colours, surf.points.numpy(), surf.colours.numpy())
    ours = voxelize_mesh(vertices, faces, resolution)
    volume_ratio, covered = volume_scores(ours, truth)
    return GeometryMetrics(
        iou=iou(ours, truth),
        volume_ratio=volume_ratio,
        truth_covered=covered,
        chamfer=chamfer_distance(vertices, faces, surf.points.numpy()),
        colour_mae=mae,
        colour_rgb_distance=dist,
    )
