"""Mesh extraction: density grid -> threshold -> clean-up -> marching cubes -> vertex colours.

Any field with ``density(points [N, 3]) -> [N]``, ``albedo(points) -> [N, 3]``,
``surface_threshold(voxel_size) -> float`` and a ``device`` can be exported (a
:class:`~ui3d.scene.base.Scene` is one; so is an analytic test field).

- The **automatic threshold** is the scene's own notion of "solid" at the grid's voxel size
  (NeRF: the density at which a slab of matter is half opaque, ``ln 2 / thickness``; Gaussians:
  a summed opacity of 0.1), so it does not depend on the scene's scale. Where the mesh is carved
  (below), the renders' hull sets the outline and inside it the scene's ``carved_threshold``
  applies (a NeRF's is lower: the faint inside of a soft shell is still the object).
- **Clean-up** on the thresholded grid: connected components smaller than
  ``min_component_fraction`` of the largest are dropped (floaters), enclosed cavities are filled
  (Gaussians and NeRFs often model only a shell), then marching cubes runs on the density with
  those changes applied, padded so the mesh is closed at the grid's border.
- **Carving** (fields that also ``render``: every scene, :class:`RenderedField`): the dense region
  is intersected with the scene's visual hull from ``carve_views`` renders all around
  (:mod:`ui3d.export.carve`), so the mesh's outline is what the scene's renders show, not where
  its density happens to cross a level.
- Optional **decimation** to ``max_faces`` (quadric, ``fast_simplification`` through trimesh).

:class:`MeshRegion` is the space in and around an exported mesh: a finished scene keeps only what
lies there (``Scene.keep_region``), so its previews and videos lose the floaters the mesh dropped.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from ui3d.config import FieldValueError, check_ranges
from ui3d.errors import UserError

__all__ = [
    "Mesh", "ExtractConfig", "DensityField", "RenderedField", "density_grid", "extract_mesh", "EmptySceneError",
    "ExportWarning", "MeshRegion",
]


class ExportWarning(UserWarning):
    """A result that is written but worse than asked for (the CLI prints it as one ``warning:`` line)."""


class DensityField(Protocol):
    @property
    def device(self) -> torch.device: ...

    def density(self, x: Tensor) -> Tensor: ...

    def albedo(self, x: Tensor) -> Tensor: ...

    def surface_threshold(self, voxel_size: float) -> float: ...


@runtime_checkable
class RenderedField(DensityField, Protocol):
    """A density field that renders (every scene): its mesh is carved by its renders, and inside
    their hull ``carved_threshold`` is its level of solid."""

    def render(self, cameras, shading: str = "albedo", generator=None, background=None, normals: bool = True): ...

    def carved_threshold(self, voxel_size: float) -> float: ...


class EmptySceneError(UserError):
    """Nothing in the scene is above the density threshold: the user's scene (or ``--threshold``)
    gives no surface, which one line says (exit code 2), not a traceback."""


@dataclass
class Mesh:
    """A triangle mesh with per-vertex colours in [0, 1] (float32 / int64 numpy arrays)."""

    vertices: np.ndarray  # [V, 3]
    faces: np.ndarray  # [F, 3]
    colours: np.ndarray  # [V, 3]
    threshold: float = float("nan")

    def to_trimesh(self):
        import trimesh

        rgba = np.concatenate([self.colours, np.ones((len(self.colours), 1))], 1)
        return trimesh.Trimesh(
            self.vertices, self.faces, vertex_colors=(np.clip(rgba, 0, 1) * 255).round().astype(np.uint8), process=False
        )


@dataclass(frozen=True)
class ExtractConfig:
    resolution: int = 128
    bound: float = 1.0
    threshold: float | None = None  # None = the scene's automatic threshold
    min_component_fraction: float = 0.05
    fill_cavities: bool = True
    max_faces: int | None = 20000
    carve_views: int = 64  # renders for the visual hull (0: the density alone decides)
    carve_size: int = 64  # pixels per side of each carving render (framed tightly on the content)

    def __post_init__(self) -> None:
        if self.resolution < 8:
            raise FieldValueError("resolution", f"expected >= 8 cells per side, got {self.resolution}")
        if self.carve_views < 0:
            raise FieldValueError("carve_views", f"expected >= 0 renders (0 = no carving), got {self.carve_views}")
        if self.carve_size < 8:
            raise FieldValueError("carve_size", f"expected >= 8 pixels per side, got {self.carve_size}")
        if self.threshold is not None and not self.threshold > 0:
            raise FieldValueError("threshold", f"expected a positive density or None (automatic), got {self.threshold}")
        if self.max_faces is not None and self.max_faces < 4:
            raise FieldValueError("max_faces", f"expected >= 4 faces or None (no decimation), got {self.max_faces}")
        # upper bounds: the grid is resolution³ cells (512³ = 134 M), each carving view is a render
        check_ranges(self, resolution=(8, 512), bound=(1e-6, None), min_component_fraction=(0, 1),
                     carve_views=(0, 1024), carve_size=(8, 1024))


def _cell_centres(resolution: int, bound: float) -> Tensor:
    c = (torch.arange(resolution, dtype=torch.float32) + 0.5) * (2.0 * bound / resolution) - bound
    return torch.stack(torch.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3)


@torch.no_grad()
def density_grid(scene: DensityField, resolution: int = 128, bound: float = 1.0, chunk: int = 1 << 16) -> Tensor:
    """Densities at the cell centres of [-bound, bound]^3, [R, R, R] indexed [x, y, z] (CPU)."""
    pts = _cell_centres(resolution, bound)
    out = [scene.density(pts[i : i + chunk].to(scene.device)).float().cpu() for i in range(0, pts.shape[0], chunk)]
    return torch.cat(out).reshape(resolution, resolution, resolution)


def clean_occupancy(occ: np.ndarray, min_component_fraction: float, fill_cavities: bool) -> np.ndarray:
    """Drop small connected components (relative to the largest) and fill enclosed cavities."""
    from scipy import ndimage  # here, not at import: run configs import ExtractConfig (0.5 s of scipy)

    labels, n = ndimage.label(occ)
    if n > 1:
        sizes = np.bincount(labels.ravel())[1:]
        keep = np.nonzero(sizes >= min_component_fraction * sizes.max())[0] + 1
        occ = np.isin(labels, keep)
    if fill_cavities:
        occ = ndimage.binary_fill_holes(occ)
    return occ


@torch.no_grad()
def extract_mesh(scene: DensityField, cfg: ExtractConfig = ExtractConfig()) -> Mesh:
    """A closed, vertex-coloured mesh of the scene's surface (see the module docstring).

    Raises :class:`EmptySceneError` (a ``ValueError``) naming the threshold when nothing is above
    it."""
    from skimage.measure import marching_cubes

    h = 2.0 * cfg.bound / cfg.resolution
    grid = density_grid(scene, cfg.resolution, cfg.bound).numpy().astype(np.float64)
    tau = float(cfg.threshold if cfg.threshold is not None else scene.surface_threshold(h))
    dense = grid > tau
    if not dense.any():
        raise EmptySceneError(
            f"export: nothing in the scene is above the density threshold {tau:.4g} (the largest "
            f"density on the {cfg.resolution}^3 grid is {grid.max():.4g}); the scene is empty or "
            "transparent — train longer, or pass a lower threshold"
        )
    solid = grid / tau  # solid above 1
    if cfg.carve_views and isinstance(scene, RenderedField):
        level = tau if cfg.threshold is not None else float(scene.carved_threshold(h))
        carved = np.minimum(grid / level, _hull_grid(scene, grid > level, cfg) / 0.5)
        if (carved > 1.0).any():
            solid, tau = carved, level
        else:  # a foggy scene: a mesh of its density beats no file at all
            warnings.warn(
                f"export: nothing above the density threshold {level:.4g} is half opaque in all "
                f"{cfg.carve_views} carving renders (the scene is mostly transparent); the mesh "
                "follows the density alone", ExportWarning,
            )
    occ = solid > 1.0
    kept = clean_occupancy(occ, cfg.min_component_fraction, cfg.fill_cavities)
    field = np.where(kept, np.maximum(solid, 2.0), np.minimum(solid, 0.5))
    field[kept & occ] = solid[kept & occ]
    field = np.pad(field, 1, constant_values=0.0)
    verts, faces, _, _ = marching_cubes(field, level=1.0, spacing=(h, h, h))
    verts = verts - cfg.bound + 0.5 * h - h  # padding shifts indices by one cell
    faces = faces[:, ::-1].copy()  # skimage orients faces towards lower values; flip to outward
    mesh = _finish(verts.astype(np.float64), faces.astype(np.int64), cfg.max_faces)
    pts = torch.from_numpy(mesh[0]).float().to(scene.device)
    colours = torch.cat([scene.albedo(pts[i : i + 65536]).float().cpu() for i in range(0, len(pts), 65536)])
    return Mesh(
        vertices=mesh[0].astype(np.float32),
        faces=mesh[1].astype(np.int64),
        colours=colours.clamp(0, 1).numpy().astype(np.float32),
        threshold=tau,
    )


def _hull_grid(scene: RenderedField, dense: np.ndarray, cfg: ExtractConfig) -> np.ndarray:
    """The visual hull (:func:`ui3d.export.carve.rendered_hull`) on the grid, evaluated at the
    dense cells and their neighbours (all that marching cubes reads there; elsewhere 1). The
    carving cameras frame the ball around the origin that holds every dense cell."""
    from scipy import ndimage

    from ui3d.export.carve import rendered_hull

    near = ndimage.binary_dilation(dense)
    pts = _cell_centres(cfg.resolution, cfg.bound)[torch.from_numpy(near.reshape(-1))]
    h = 2.0 * cfg.bound / cfg.resolution
    radius = float(pts.norm(dim=-1).max()) + h
    hull = np.ones(dense.shape)
    hull[near] = rendered_hull(scene, pts.to(scene.device), cfg.carve_views, cfg.carve_size, radius,
                               distance=4.0 * cfg.bound * math.sqrt(3.0)).cpu().numpy()
    return hull


def _finish(verts: np.ndarray, faces: np.ndarray, max_faces: int | None) -> tuple[np.ndarray, np.ndarray]:
    import trimesh

    m = trimesh.Trimesh(verts, faces, process=True)
    if m.volume < 0:
        m.invert()
    if max_faces is not None and len(m.faces) > max_faces:
        m = m.simplify_quadric_decimation(face_count=max_faces)
        if m.volume < 0:
            m.invert()
    return np.asarray(m.vertices), np.asarray(m.faces)


@dataclass(frozen=True)
class MeshRegion:
    """The cells of a [-bound, bound]^3 grid (bool [R, R, R], indexed [x, y, z]) inside a closed mesh
    or within ``margin`` cells of it. ``contains(points)`` says which points lie in such a cell."""

    cells: Tensor
    bound: float

    @staticmethod
    def from_mesh(mesh: Mesh, bound: float = 1.0, resolution: int = 64, margin: int = 2) -> "MeshRegion":
        from scipy import ndimage

        from ui3d.metrics.geometry import voxelize_mesh

        inside = voxelize_mesh(mesh.vertices, mesh.faces, resolution, bound)
        if margin > 0:
            inside = ndimage.binary_dilation(inside, iterations=margin)
        return MeshRegion(torch.from_numpy(inside), bound)

    def contains(self, points: Tensor) -> Tensor:
        """[N, 3] world points -> [N] bool (outside the grid: False)."""
        r = self.cells.shape[0]
        idx = ((points + self.bound) / (2.0 * self.bound) * r).floor().long()
        in_grid = ((idx >= 0) & (idx < r)).all(-1)
        idx = idx.clamp(0, r - 1).cpu()
        return self.cells[idx[:, 0], idx[:, 1], idx[:, 2]].to(points.device) & in_grid
