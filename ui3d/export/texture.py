"""UV unwrap (xatlas) and albedo texture baking with padded seams.

Every texel covered by a triangle in UV space is mapped back to its 3D point (barycentric
interpolation) and coloured by the scene's albedo there; the empty texels take the colour of the
nearest covered texel, so bilinear lookups and mip-maps do not bleed the background into seams.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import ndimage

from ui3d.export.mesh import Mesh

__all__ = ["TexturedMesh", "unwrap", "bake_texture", "textured_mesh", "sample_texture"]


@dataclass
class TexturedMesh:
    """A mesh with per-vertex UVs (vertices split along seams) and an RGB texture.

    uv: [V, 2], OBJ convention (v = 0 at the image's bottom row); image: uint8 [S, S, 3];
    colours: the per-vertex colours carried over from the source mesh."""

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    colours: np.ndarray
    image: np.ndarray


def unwrap(mesh: Mesh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """xatlas parametrisation: (vmapping [V'] into the source vertices, faces [F, 3], uv [V', 2])."""
    import xatlas

    vmapping, indices, uvs = xatlas.parametrize(mesh.vertices.astype(np.float32), mesh.faces.astype(np.uint32))
    return vmapping.astype(np.int64), indices.astype(np.int64), uvs.astype(np.float32)


def _face_id_map(uv: np.ndarray, faces: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    img = Image.new("I", (size, size), 0)
    draw = ImageDraw.Draw(img)
    pts = np.stack([uv[:, 0] * size, (1.0 - uv[:, 1]) * size], -1)
    for i, f in enumerate(faces):
        tri = [tuple(p) for p in pts[f]]
        draw.polygon(tri, fill=i + 1, outline=i + 1)
    return np.asarray(img, dtype=np.int64) - 1  # [S, S], -1 = empty


def bake_texture(
    vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray, colour_fn: Callable[[np.ndarray], np.ndarray], size: int = 512
) -> np.ndarray:
    """Texture uint8 [size, size, 3]: ``colour_fn(points [N, 3]) -> [N, 3]`` in [0, 1] at the 3D
    point of every covered texel; seams padded with the nearest covered texel."""
    fid = _face_id_map(uv, faces, size)
    covered = fid >= 0
    if not covered.any():
        raise ValueError("bake_texture: the UV layout covers no texel (degenerate mesh?)")
    rows, cols = np.nonzero(covered)
    f = faces[fid[rows, cols]]
    p = np.stack([(cols + 0.5) / size, 1.0 - (rows + 0.5) / size], -1)
    a, b, c = uv[f[:, 0]], uv[f[:, 1]], uv[f[:, 2]]
    v0, v1, v2 = b - a, c - a, p - a
    d00, d01, d11 = (v0 * v0).sum(-1), (v0 * v1).sum(-1), (v1 * v1).sum(-1)
    d20, d21 = (v2 * v0).sum(-1), (v2 * v1).sum(-1)
    den = d00 * d11 - d01 * d01
    den = np.where(np.abs(den) < 1e-20, 1e-20, den)
    l1 = (d11 * d20 - d01 * d21) / den
    l2 = (d00 * d21 - d01 * d20) / den
    bary = np.clip(np.stack([1 - l1 - l2, l1, l2], -1), 0.0, 1.0)  # edge texels: nearest point of the face
    bary = bary / bary.sum(-1, keepdims=True)
    pts = (bary[:, :, None] * vertices[f]).sum(1)
    tex = np.zeros((size, size, 3), dtype=np.float32)
    tex[rows, cols] = np.clip(colour_fn(pts.astype(np.float32)), 0.0, 1.0)
    _, (ri, ci) = ndimage.distance_transform_edt(~covered, return_indices=True)
    tex = tex[ri, ci]
    return (tex * 255.0).round().astype(np.uint8)


def textured_mesh(mesh: Mesh, colour_fn: Callable[[np.ndarray], np.ndarray], size: int = 512) -> TexturedMesh:
    """Unwrap ``mesh`` and bake ``colour_fn`` into a texture."""
    vmap, faces, uv = unwrap(mesh)
    verts = mesh.vertices[vmap]
    image = bake_texture(verts, faces, uv, colour_fn, size)
    return TexturedMesh(vertices=verts, faces=faces, uv=uv, colours=mesh.colours[vmap], image=image)


def sample_texture(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Nearest-texel colours [N, 3] in [0, 1] at UVs [N, 2] (OBJ convention)."""
    s = image.shape[0]
    cols = np.clip((uv[:, 0] * s).astype(np.int64), 0, s - 1)
    rows = np.clip(((1.0 - uv[:, 1]) * s).astype(np.int64), 0, s - 1)
    return image[rows, cols, :3].astype(np.float32) / 255.0
