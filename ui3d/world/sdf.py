"""Signed distance functions of primitives and combinators, as pure torch functions.

Every function takes points ``p`` of shape [..., 3] and returns signed distances of shape [...]
(negative inside). Shape parameters are plain Python numbers or 3-tuples so the functions run on
any device without moving constants around. The formulas follow Inigo Quilez's catalogue
(https://iquilezles.org/articles/distfunctions/); all are exact distances except
:func:`ellipsoid` (a close bound) and results of :func:`intersect`/:func:`subtract`/
:func:`smooth_union` (lower bounds of the distance, which is what sphere tracing needs).
Signs are always exact, so occupancy (``sdf < 0``) is exact.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import Tensor

__all__ = [
    "SDF",
    "Vec3",
    "sphere",
    "spheres",
    "box",
    "cylinder",
    "cone",
    "capsule",
    "torus",
    "ellipsoid",
    "half_space",
    "union",
    "intersect",
    "subtract",
    "smooth_union",
    "translate",
    "rotation_matrix",
    "rotate",
    "scaled",
    "gradient_normals",
]

SDF = Callable[[Tensor], Tensor]
Vec3 = Sequence[float]


_CONSTANTS: dict[tuple, Tensor] = {}
_vector_norm = torch.linalg.vector_norm


def _norm(v: Tensor) -> Tensor:
    return _vector_norm(v, dim=-1)


def _const(values: Sequence[float], like: Tensor) -> Tensor:
    """A small constant tensor on ``like``'s device and dtype, cached (creating one costs ~5 us)."""
    key = (tuple(float(v) for v in values), like.device, like.dtype)
    t = _CONSTANTS.get(key)
    if t is None:
        if len(_CONSTANTS) > 4096:
            _CONSTANTS.clear()
        t = _CONSTANTS[key] = torch.tensor(key[0], dtype=like.dtype, device=like.device)
    return t


def _offset(p: Tensor, c: Vec3) -> Tensor:
    if c[0] == 0 and c[1] == 0 and c[2] == 0:
        return p
    return p - _const(c, p)


def sphere(p: Tensor, center: Vec3 = (0.0, 0.0, 0.0), radius: float = 0.5) -> Tensor:
    return _norm(_offset(p, center)) - radius


def spheres(p: Tensor, centers: Sequence[Vec3], radius: float) -> Tensor:
    """Union of equal spheres (one batched evaluation)."""
    c = _const([v for ctr in centers for v in ctr], p).reshape(len(centers), 3)
    return _norm(p[..., None, :] - c).amin(dim=-1) - radius


def box(
    p: Tensor, center: Vec3 = (0.0, 0.0, 0.0), half: Vec3 = (0.5, 0.5, 0.5), rounding: float = 0.0
) -> Tensor:
    """Axis-aligned box with half extents ``half``; ``rounding`` rounds the edges inwards."""
    q = _offset(p, center).abs() - _const([h - rounding for h in half], p)
    outside = _norm(q.clamp_min(0.0))
    inside = q.amax(dim=-1).clamp_max(0.0)
    return outside + inside - rounding


def cylinder(p: Tensor, a: Vec3, b: Vec3, radius: float) -> Tensor:
    """Capped cylinder with axis from ``a`` to ``b``."""
    if a[0] == b[0] and a[1] == b[1]:
        return _z_cylinder(p, a, b, radius)
    ba_l = [b[i] - a[i] for i in range(3)]
    ba = _const(ba_l, p)
    baba = sum(v * v for v in ba_l)
    pa = _offset(p, a)
    paba = pa @ ba
    x = _norm(pa * baba - paba[..., None] * ba) - radius * baba
    y = (paba - 0.5 * baba).abs() - 0.5 * baba
    x2 = x * x
    y2 = y * y * baba
    inside = torch.maximum(x, y) < 0
    d_out = torch.where(x > 0, x2, torch.zeros_like(x2)) + torch.where(y > 0, y2, torch.zeros_like(y2))
    d = torch.where(inside, -torch.minimum(x2, y2), d_out)
    return torch.sign(d) * torch.sqrt(d.abs()) / baba


def _z_cylinder(p: Tensor, a: Vec3, b: Vec3, radius: float) -> Tensor:
    """Capped cylinder with a vertical axis (fewer operations than the general formula)."""
    r = torch.hypot(p[..., 0] - a[0], p[..., 1] - a[1]) - radius
    lo, hi = min(a[2], b[2]), max(a[2], b[2])
    z = (p[..., 2] - 0.5 * (lo + hi)).abs() - 0.5 * (hi - lo)
    return torch.hypot(r.clamp_min(0.0), z.clamp_min(0.0)) + torch.maximum(r, z).clamp_max(0.0)


def cone(p: Tensor, a: Vec3, b: Vec3, radius_a: float, radius_b: float = 0.0) -> Tensor:
    """Capped cone (frustum) with axis from ``a`` (radius ``radius_a``) to ``b`` (``radius_b``)."""
    ba_l = [b[i] - a[i] for i in range(3)]
    baba = sum(v * v for v in ba_l)
    rba = radius_b - radius_a
    if a[0] == b[0] and a[1] == b[1]:  # vertical axis: radial distance and height directly
        x = torch.hypot(p[..., 0] - a[0], p[..., 1] - a[1])
        paba = (p[..., 2] - a[2]) * (1.0 / ba_l[2])
    else:
        pa = _offset(p, a)
        paba = pa @ _const([v / baba for v in ba_l], p)
        x = ((pa * pa).sum(dim=-1) - paba * paba * baba).clamp_min(0.0).sqrt()
    cax = (x - torch.where(paba < 0.5, radius_a, radius_b)).clamp_min(0.0)
    cay = (paba - 0.5).abs() - 0.5
    k = rba * rba + baba
    f = ((x - radius_a) * (rba / k) + paba * (baba / k)).clamp(0.0, 1.0)
    cbx = x - radius_a - f * rba
    cby = paba - f
    d2 = torch.minimum(cax * cax + cay * cay * baba, cbx * cbx + cby * cby * baba)
    inside = (cbx < 0) & (cay < 0)
    d = d2.sqrt()
    return torch.where(inside, -d, d)


def capsule(p: Tensor, a: Vec3, b: Vec3, radius: float) -> Tensor:
    """Segment from ``a`` to ``b`` thickened by ``radius``."""
    ba_l = [b[i] - a[i] for i in range(3)]
    baba = sum(v * v for v in ba_l)
    ba = _const(ba_l, p)
    pa = _offset(p, a)
    h = (pa @ _const([v / baba for v in ba_l], p)).clamp(0.0, 1.0)
    return _norm(pa - h[..., None] * ba) - radius


def torus(p: Tensor, center: Vec3 = (0.0, 0.0, 0.0), major: float = 0.3, minor: float = 0.1) -> Tensor:
    """Torus lying in the xy-plane (axis +z) around ``center``."""
    q = _offset(p, center)
    ring = torch.hypot(q[..., 0], q[..., 1]) - major
    return torch.hypot(ring, q[..., 2]) - minor


def ellipsoid(p: Tensor, center: Vec3, radii: Vec3) -> Tensor:
    """Axis-aligned ellipsoid (exact sign, distance a close bound)."""
    q = _offset(p, center)
    k0 = _norm(q * _const([1.0 / r for r in radii], p))
    k1 = _norm(q * _const([1.0 / (r * r) for r in radii], p)).clamp_min(1e-9)
    return k0 * (k0 - 1.0) / k1


def half_space(p: Tensor, normal: Vec3, offset: float) -> Tensor:
    """Points with ``dot(p, n) <= offset`` are inside (``normal`` is normalised here)."""
    norm = math.sqrt(sum(v * v for v in normal))
    return p @ _const([v / norm for v in normal], p) - offset


def union(*ds: Tensor) -> Tensor:
    out = ds[0]
    for d in ds[1:]:
        out = torch.minimum(out, d)
    return out


def intersect(*ds: Tensor) -> Tensor:
    out = ds[0]
    for d in ds[1:]:
        out = torch.maximum(out, d)
    return out


def subtract(d: Tensor, cut: Tensor) -> Tensor:
    """``d`` with the solid of ``cut`` removed."""
    return torch.maximum(d, -cut)


def smooth_union(d1: Tensor, d2: Tensor, k: float) -> Tensor:
    """Polynomial smooth minimum with blend radius ``k``."""
    h = (0.5 + 0.5 * (d2 - d1) / k).clamp(0.0, 1.0)
    return d2 + (d1 - d2) * h - k * h * (1.0 - h)


def translate(p: Tensor, offset: Vec3) -> Tensor:
    """Points in the frame of a shape moved by ``offset``: evaluate ``sdf(translate(p, t))``."""
    return _offset(p, offset)


def rotation_matrix(axis: str, degrees: float) -> tuple[tuple[float, float, float], ...]:
    """3x3 rotation about the x, y or z axis (right-handed), as nested tuples."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    if axis == "x":
        return ((1.0, 0.0, 0.0), (0.0, c, -s), (0.0, s, c))
    if axis == "y":
        return ((c, 0.0, s), (0.0, 1.0, 0.0), (-s, 0.0, c))
    if axis == "z":
        return ((c, -s, 0.0), (s, c, 0.0), (0.0, 0.0, 1.0))
    raise ValueError(f"axis: expected 'x', 'y' or 'z', got {axis!r}")


def rotate(p: Tensor, rotation: Sequence[Sequence[float]]) -> Tensor:
    """Points in the frame of a shape rotated by ``rotation`` (about the origin): ``R^T p``."""
    return p @ _const([v for row in rotation for v in row], p).reshape(3, 3)


def scaled(sdf: SDF, factor: float) -> SDF:
    """The shape of ``sdf`` uniformly scaled by ``factor`` about the origin."""
    return lambda p: sdf(p / factor) * factor


_TETRA = ((1.0, -1.0, -1.0), (-1.0, -1.0, 1.0), (-1.0, 1.0, -1.0), (1.0, 1.0, 1.0))


def gradient_normals(sdf: SDF, p: Tensor, eps: float = 1e-3) -> Tensor:
    """Unit outward normals of ``sdf`` at points [N, 3] by tetrahedral finite differences
    (4 evaluations per point)."""
    k = _const([v for row in _TETRA for v in row], p).reshape(4, 3)
    d = sdf((p[:, None, :] + eps * k).reshape(-1, 3)).reshape(-1, 4)
    g = d @ k
    return g / g.norm(dim=-1, keepdim=True).clamp_min(1e-12)
