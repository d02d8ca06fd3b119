"""Cameras: the one convention shared by every renderer in ui3d.

Camera convention
-----------------
- World: right-handed, **+z is up**. An object's **front faces +x**.
- A camera at azimuth ``a``, elevation ``e`` (degrees) and distance ``d`` sits at
  ``d * (cos e * cos a, cos e * sin a, sin e)`` and looks at the origin. Azimuth 0 therefore looks
  at the object's front, azimuth 90 at its left side (+y), azimuth ±180 at its back; elevation 90
  looks straight down. Azimuths are reported wrapped to ``[-180, 180)``.
- ``c2w`` (camera-to-world, ``[B, 4, 4]``) is OpenGL-style: the camera looks along its own **-z**,
  its **+y** is image-up and its **+x** is image-right. Columns 0..2 of ``c2w[:3, :3]`` are the
  camera's right, up and backward axes in world coordinates; column 3 is the camera position.
  The up vector used to build it is world +z (for a camera looking straight up or down, where
  that is undefined, image-up is the world direction pointing away from the camera's azimuth).
- Intrinsics: a pinhole with square pixels and a vertical field of view ``fovy``; the focal length
  in pixels is ``f = 0.5 * H / tan(fovy / 2)`` and the principal point is the image centre.
- Images are ``[B, H, W, C]`` with **row 0 at the top** and column 0 at the left. The centre of pixel
  ``(row i, col j)`` is at ``(j + 0.5, i + 0.5)`` in pixel units, so its ray direction in camera
  space is ``((j + 0.5 - W/2) / f, -(i + 0.5 - H/2) / f, -1)``, normalised.
- Ray directions returned by :func:`camera_rays` are unit vectors, so depths measured along a ray
  are Euclidean distances from the camera centre.
- Lighting: each camera carries a point light position ``light_pos`` (world space). Random cameras
  put it near the camera: direction = unit camera direction + Gaussian noise
  (std ``light_perturb``), renormalised; distance = ``U(light_distance_factor) * camera distance``.
  Orbit cameras put the light at the camera.

Random cameras follow DreamFusion's defaults (elevation -10..45 deg, distance 1.5..2.0, vertical
field of view 40..70 deg) with azimuths stratified over the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence, Union

import torch
from torch import Tensor

__all__ = [
    "Cameras",
    "CameraRanges",
    "CameraSchedule",
    "look_at",
    "camera_rays",
    "focal_length_px",
    "project_points",
    "spherical_to_cartesian",
    "cameras_from_spherical",
    "stratified_azimuths",
    "sample_random_cameras",
    "orbit_cameras",
    "with_turned_twins",
    "ranges_at",
    "wrap_degrees",
]

Size = Union[int, Sequence[int]]


@dataclass(frozen=True)
class Cameras:
    """A batch of pinhole cameras (see the module docstring for the convention).

    c2w: [B, 4, 4]; fovy_deg, azimuth_deg, elevation_deg, distance: [B]; light_pos: [B, 3];
    height, width: image size in pixels.
    """

    c2w: Tensor
    fovy_deg: Tensor
    azimuth_deg: Tensor
    elevation_deg: Tensor
    distance: Tensor
    light_pos: Tensor
    height: int
    width: int

    def __post_init__(self) -> None:
        b = self.c2w.shape[0]
        assert self.c2w.shape == (b, 4, 4), self.c2w.shape
        for name in ("fovy_deg", "azimuth_deg", "elevation_deg", "distance"):
            assert getattr(self, name).shape == (b,), (name, getattr(self, name).shape)
        assert self.light_pos.shape == (b, 3), self.light_pos.shape

    def __len__(self) -> int:
        return self.c2w.shape[0]

    def __getitem__(self, index: Union[int, slice, Tensor, Sequence[int]]) -> "Cameras":
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        elif not isinstance(index, (slice, Tensor)):
            index = torch.as_tensor(index, dtype=torch.long)
        return Cameras(
            c2w=self.c2w[index],
            fovy_deg=self.fovy_deg[index],
            azimuth_deg=self.azimuth_deg[index],
            elevation_deg=self.elevation_deg[index],
            distance=self.distance[index],
            light_pos=self.light_pos[index],
            height=self.height,
            width=self.width,
        )

    def to(self, device: Union[str, torch.device]) -> "Cameras":
        return Cameras(
            c2w=self.c2w.to(device),
            fovy_deg=self.fovy_deg.to(device),
            azimuth_deg=self.azimuth_deg.to(device),
            elevation_deg=self.elevation_deg.to(device),
            distance=self.distance.to(device),
            light_pos=self.light_pos.to(device),
            height=self.height,
            width=self.width,
        )

    @property
    def device(self) -> torch.device:
        return self.c2w.device

    @property
    def position(self) -> Tensor:
        """Camera centres in world space, [B, 3]."""
        return self.c2w[:, :3, 3]

    def resized(self, height: int, width: int | None = None) -> "Cameras":
        """The same cameras rendering a different number of pixels (same field of view)."""
        return replace(self, height=int(height), width=int(height if width is None else width))


def _size(size: Size) -> tuple[int, int]:
    if isinstance(size, int):
        h, w = size, size
    else:
        h, w = (int(s) for s in size)
    if h <= 0 or w <= 0:
        raise ValueError(f"size: expected positive image height and width, got {size!r}")
    return h, w


def wrap_degrees(angle: Tensor) -> Tensor:
    """Wrap angles in degrees to [-180, 180)."""
    return torch.remainder(angle + 180.0, 360.0) - 180.0


def _normalize(v: Tensor, eps: float = 1e-12) -> Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(eps)


def look_at(eye: Tensor, target: Tensor | None = None, up: Tensor | None = None) -> Tensor:
    """OpenGL-style camera-to-world matrices [B, 4, 4] for cameras at ``eye`` [B, 3] looking at
    ``target`` ([3] or [B, 3], default the origin) with world ``up`` ([3] or [B, 3], default +z).

    Where the viewing direction is parallel to ``up``, image-up falls back to the horizontal
    direction pointing away from the camera (``-eye`` projected on the xy-plane), or -x when the
    camera sits exactly on the up axis.
    """
    eye = eye.to(torch.float32) if not eye.is_floating_point() else eye
    if target is None:
        target = torch.zeros(3, dtype=eye.dtype, device=eye.device)
    if up is None:
        up = torch.tensor([0.0, 0.0, 1.0], dtype=eye.dtype, device=eye.device)
    target = target.to(eye).expand_as(eye)
    up = up.to(eye).expand_as(eye)
    forward = _normalize(target - eye)
    right = torch.cross(forward, up, dim=-1)
    degenerate = right.norm(dim=-1) < 1e-6
    if bool(degenerate.any()):
        horiz = torch.stack([-eye[:, 0], -eye[:, 1], torch.zeros_like(eye[:, 0])], dim=-1)
        flat = horiz.norm(dim=-1) < 1e-6
        fallback_x = torch.tensor([-1.0, 0.0, 0.0], dtype=eye.dtype, device=eye.device)
        horiz = torch.where(flat[:, None], fallback_x.expand_as(horiz), _normalize(horiz))
        # image-up for a camera looking down is the horizontal direction away from it, and the
        # opposite for one looking up; the sign of forward.z chooses.
        sign = -torch.sign(forward[:, 2:3])
        alt_up = horiz * sign
        right = torch.where(degenerate[:, None], torch.cross(forward, alt_up, dim=-1), right)
    right = _normalize(right)
    cam_up = torch.cross(right, forward, dim=-1)
    c2w = torch.zeros(eye.shape[0], 4, 4, dtype=eye.dtype, device=eye.device)
    c2w[:, :3, 0] = right
    c2w[:, :3, 1] = cam_up
    c2w[:, :3, 2] = -forward
    c2w[:, :3, 3] = eye
    c2w[:, 3, 3] = 1.0
    return c2w


def spherical_to_cartesian(azimuth_deg: Tensor, elevation_deg: Tensor, distance: Tensor) -> Tensor:
    """Camera positions [B, 3] at ``d * (cos e cos a, cos e sin a, sin e)``."""
    a = torch.deg2rad(azimuth_deg)
    e = torch.deg2rad(elevation_deg)
    return torch.stack(
        [
            distance * torch.cos(e) * torch.cos(a),
            distance * torch.cos(e) * torch.sin(a),
            distance * torch.sin(e),
        ],
        dim=-1,
    )


def focal_length_px(cams: Cameras) -> Tensor:
    """Focal length in pixels, [B]: ``0.5 * H / tan(fovy / 2)``."""
    return 0.5 * cams.height / torch.tan(0.5 * torch.deg2rad(cams.fovy_deg))


def camera_rays(cams: Cameras) -> tuple[Tensor, Tensor]:
    """World-space ray origins and unit directions through every pixel centre, each [B, H, W, 3]."""
    h, w = cams.height, cams.width
    dtype, device = cams.c2w.dtype, cams.c2w.device
    focal = focal_length_px(cams).to(dtype)  # [B]
    cols = torch.arange(w, dtype=dtype, device=device) + 0.5 - 0.5 * w
    rows = torch.arange(h, dtype=dtype, device=device) + 0.5 - 0.5 * h
    x = cols[None, None, :].expand(len(cams), h, w) / focal[:, None, None]
    y = -rows[None, :, None].expand(len(cams), h, w) / focal[:, None, None]
    d_cam = torch.stack([x, y, -torch.ones_like(x)], dim=-1)  # [B, H, W, 3]
    rot = cams.c2w[:, :3, :3]
    dirs = torch.einsum("bij,bhwj->bhwi", rot, d_cam)
    dirs = _normalize(dirs)
    origins = cams.c2w[:, None, None, :3, 3].expand_as(dirs)
    return origins, dirs


def project_points(cams: Cameras, points: Tensor) -> tuple[Tensor, Tensor]:
    """Project world points [B, N, 3] to pixel coordinates [B, N, 2] (x = column, y = row, both in
    pixel units with pixel centres at +0.5) and camera-space depth along the viewing axis [B, N]."""
    rot = cams.c2w[:, :3, :3]
    rel = points - cams.c2w[:, None, :3, 3]
    p_cam = torch.einsum("bji,bnj->bni", rot, rel)  # R^T (p - t)
    z = -p_cam[..., 2]
    f = focal_length_px(cams)[:, None]
    u = p_cam[..., 0] / z * f + 0.5 * cams.width
    v = -p_cam[..., 1] / z * f + 0.5 * cams.height
    return torch.stack([u, v], dim=-1), z


def cameras_from_spherical(
    azimuth_deg: Tensor,
    elevation_deg: Tensor,
    distance: Tensor,
    fovy_deg: Tensor,
    size: Size,
    light_pos: Tensor | None = None,
) -> Cameras:
    """Cameras looking at the origin from spherical positions (all angles in degrees, [B])."""
    h, w = _size(size)
    azimuth_deg = wrap_degrees(azimuth_deg.to(torch.float32))
    elevation_deg = elevation_deg.to(torch.float32)
    distance = distance.to(torch.float32)
    eye = spherical_to_cartesian(azimuth_deg, elevation_deg, distance)
    if light_pos is None:
        light_pos = eye.clone()
    return Cameras(
        c2w=look_at(eye),
        fovy_deg=fovy_deg.to(torch.float32),
        azimuth_deg=azimuth_deg,
        elevation_deg=elevation_deg,
        distance=distance,
        light_pos=light_pos.to(torch.float32),
        height=h,
        width=w,
    )


@dataclass(frozen=True)
class CameraRanges:
    """Ranges of the random camera sampler (DreamFusion defaults). Angles in degrees."""

    elevation_deg: tuple[float, float] = (-10.0, 45.0)
    distance: tuple[float, float] = (1.5, 2.0)
    fovy_deg: tuple[float, float] = (40.0, 70.0)
    light_distance_factor: tuple[float, float] = (0.8, 1.5)
    light_perturb: float = 0.5

    def __post_init__(self) -> None:
        for name in ("elevation_deg", "distance", "fovy_deg", "light_distance_factor"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ValueError(
                    f"CameraRanges.{name}: expected (low, high) with low <= high, got {(lo, hi)}"
                )
        if not (-90.0 <= self.elevation_deg[0] and self.elevation_deg[1] <= 90.0):
            raise ValueError(
                f"CameraRanges.elevation_deg: expected values in [-90, 90], got {self.elevation_deg}"
            )
        if self.distance[0] <= 0:
            raise ValueError(f"CameraRanges.distance: expected positive distances, got {self.distance}")
        if self.light_distance_factor[0] <= 0:
            raise ValueError(f"CameraRanges.light_distance_factor: expected positive factors, got {self.light_distance_factor}")
        if not (0.0 < self.fovy_deg[0] and self.fovy_deg[1] < 180.0):
            raise ValueError(f"CameraRanges.fovy_deg: expected values in (0, 180), got {self.fovy_deg}")
        if self.light_perturb < 0:
            raise ValueError(f"CameraRanges.light_perturb: expected >= 0, got {self.light_perturb}")


def _uniform(n: int, lo_hi: tuple[float, float], generator: torch.Generator) -> Tensor:
    lo, hi = lo_hi
    return lo + (hi - lo) * torch.rand(n, generator=generator)


def stratified_azimuths(n: int, generator: torch.Generator) -> Tensor:
    """n azimuths in [-180, 180): one uniform sample in each of n equal bins, then one random
    rotation of the whole set. Consecutive azimuths (circularly) are less than 2 * 360 / n apart."""
    width = 360.0 / n
    jitter = torch.rand(n, generator=generator)
    base = -180.0 + (torch.arange(n, dtype=torch.float32) + jitter) * width
    rotation = 360.0 * torch.rand(1, generator=generator)
    return wrap_degrees(base + rotation)


def sample_random_cameras(
    n: int, size: Size, ranges: CameraRanges = CameraRanges(), generator: torch.Generator | None = None
) -> Cameras:
    """n random cameras looking at the origin (CPU tensors; move with ``.to(device)``).

    Azimuths are stratified (:func:`stratified_azimuths`); elevation, distance and fovy are uniform
    in their ranges; the light sits near the camera (see the module docstring).
    """
    if n <= 0:
        raise ValueError(f"n: expected a positive number of cameras, got {n}")
    if generator is None:
        raise ValueError("generator: sample_random_cameras needs a torch.Generator (one seed per run)")
    azimuth = stratified_azimuths(n, generator)
    elevation = _uniform(n, ranges.elevation_deg, generator)
    distance = _uniform(n, ranges.distance, generator)
    fovy = _uniform(n, ranges.fovy_deg, generator)
    eye = spherical_to_cartesian(azimuth, elevation, distance)
    noise = torch.randn(n, 3, generator=generator) * ranges.light_perturb
    light_dir = _normalize(_normalize(eye) + noise)
    light_dist = _uniform(n, ranges.light_distance_factor, generator) * distance
    return cameras_from_spherical(
        azimuth, elevation, distance, fovy, size, light_pos=light_dir * light_dist[:, None]
    )


def with_turned_twins(cams: Cameras, degrees: float) -> Cameras:
    """``cams``, then the same cameras (and their lights) turned by ``degrees`` of azimuth about the
    world's up axis (z) through the origin: 2n cameras, elevation, distance and field of view kept."""
    a = torch.deg2rad(torch.tensor(float(degrees)))
    x, y, z = cams.light_pos.unbind(-1)
    turned_light = torch.stack([x * a.cos() - y * a.sin(), x * a.sin() + y * a.cos(), z], dim=-1)
    twice = lambda values: torch.cat([values, values])  # noqa: E731
    return cameras_from_spherical(torch.cat([cams.azimuth_deg, cams.azimuth_deg + degrees]), twice(cams.elevation_deg),
                                  twice(cams.distance), twice(cams.fovy_deg), (cams.height, cams.width),
                                  light_pos=torch.cat([cams.light_pos, turned_light]))


def orbit_cameras(
    n: int,
    size: Size,
    elevation_deg: float = 15.0,
    distance: float = 1.8,
    fovy_deg: float = 45.0,
    start_azimuth_deg: float = 0.0,
) -> Cameras:
    """n cameras at evenly spaced azimuths (starting at the front) for turntables and previews;
    the light sits at the camera."""
    if n <= 0:
        raise ValueError(f"n: expected a positive number of cameras, got {n}")
    azimuth = start_azimuth_deg + 360.0 * torch.arange(n, dtype=torch.float32) / n
    full = lambda v: torch.full((n,), float(v))  # noqa: E731
    return cameras_from_spherical(azimuth, full(elevation_deg), full(distance), full(fovy_deg), size)


@dataclass(frozen=True)
class CameraSchedule:
    """Step-dependent camera ranges: ``stages[k] = (first_step, ranges)``, first steps increasing,
    the first one 0. Used for progressive schedules (e.g. widen the elevation range later)."""

    stages: tuple[tuple[int, CameraRanges], ...] = ((0, CameraRanges()),)

    def __post_init__(self) -> None:
        steps = [s for s, _ in self.stages]
        if not steps or steps[0] != 0 or any(b <= a for a, b in zip(steps, steps[1:])):
            raise ValueError(
                f"CameraSchedule.stages: expected increasing first steps starting at 0, got {steps}"
            )


def ranges_at(step: int, schedule: CameraSchedule) -> CameraRanges:
    """The camera ranges in force at ``step``: those of the last stage that has started."""
    current = schedule.stages[0][1]
    for first, ranges in schedule.stages:
        if step >= first:
            current = ranges
    return current
