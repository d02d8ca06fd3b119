"""Analytic renderer of the built-in world: batched sphere tracing of the object SDFs in torch.

For each pixel ray (camera convention of :mod:`ui3d.cameras`): intersect the object's bounding
sphere, march ``t += sdf(o + t d)`` with a fixed iteration budget (only still-active rays are
evaluated), take finite-difference normals at the hits, colour each hit with the part whose SDF is
smallest there, and shade with ambient + Lambert from the camera's point light + Blinn-Phong
specular (glossy, ceramic). ``ss`` > 1 renders ss x ss sub-pixels and averages them, giving soft
alpha edges. No shadows, no gradients (the world is ground truth, not a scene to optimise).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from ui3d.cameras import Cameras, camera_rays
from ui3d.render.types import RenderOutput
from ui3d.world.objects import WorldObject
from ui3d.world.palette import material as get_material

__all__ = ["TraceSettings", "render_world", "trace_object", "measure_render_rate"]

Background = Union[float, Sequence[float], Tensor]


@dataclass(frozen=True)
class TraceSettings:
    """Sphere-tracing parameters. Distances are in world units (objects fit in radius 0.5)."""

    max_steps: int = 64
    hit_eps: float = 5e-4  # a ray has hit when sdf < hit_eps
    final_eps: float = 4e-3  # rays still marching after max_steps count as hits below this
    bound_margin: float = 0.02  # added to the object's bounding radius
    normal_eps: float = 1e-3  # finite-difference step for normals
    compact_every: int = 4  # drop finished rays from the active set every k steps


def _bounding_interval(o: Tensor, d: Tensor, radius: float) -> tuple[Tensor, Tensor, Tensor]:
    b = (o * d).sum(-1)
    c = (o * o).sum(-1) - radius * radius
    disc = b * b - c
    sq = disc.clamp_min(0.0).sqrt()
    t0 = (-b - sq).clamp_min(0.0)
    t1 = -b + sq
    return disc > 0, t0, t1


def trace_object(obj: WorldObject, o: Tensor, d: Tensor, settings: TraceSettings = TraceSettings()) -> tuple[Tensor, Tensor]:
    """Sphere-trace rays ``o + t d`` ([N, 3] each, unit d) against ``obj``. Returns ``(hit [N] bool,
    t [N])``; ``t`` is the hit distance along the ray where ``hit``."""
    n = o.shape[0]
    radius = obj.shape.bound_radius + settings.bound_margin
    inside, t_near, t_far = _bounding_interval(o, d, radius)
    t = t_near.clone()
    hit = torch.zeros(n, dtype=torch.bool, device=o.device)
    idx = torch.nonzero(inside).squeeze(-1)
    last_d = torch.full((n,), float("inf"), device=o.device)
    o_a, d_a, t_a, far_a = o[idx], d[idx], t[idx], t_far[idx]
    for step in range(settings.max_steps):
        if idx.numel() == 0:
            break
        dist = obj.sdf(o_a + t_a[:, None] * d_a)
        done = dist < settings.hit_eps
        t_a = torch.where(done, t_a, t_a + dist)
        if (step + 1) % settings.compact_every == 0 or step == settings.max_steps - 1:
            t[idx] = t_a
            last_d[idx] = dist
            hit[idx[done]] = True
            keep = ~done & (t_a < far_a)
            idx, o_a, d_a, t_a, far_a = idx[keep], o_a[keep], d_a[keep], t_a[keep], far_a[keep]
    # rays that ran out of steps but are very close to the surface count as hits
    hit |= inside & ~hit & (last_d < settings.final_eps) & (t < t_far)
    return hit, t


def _normals(obj: WorldObject, p: Tensor, eps: float) -> Tensor:
    """Tetrahedron finite-difference gradient of the SDF, normalised, [N, 3]."""
    k = p.new_tensor([[1.0, -1.0, -1.0], [-1.0, -1.0, 1.0], [-1.0, 1.0, -1.0], [1.0, 1.0, 1.0]])
    d = obj.sdf((p[:, None, :] + eps * k[None]).reshape(-1, 3)).reshape(-1, 4)
    g = (d[..., None] * k[None]).sum(1)
    return F.normalize(g, dim=-1)


def _shade(obj: WorldObject, p: Tensor, n: Tensor, view_dir: Tensor, light_pos: Tensor) -> Tensor:
    mat = get_material(obj.material)
    rgb_parts = obj.part_rgb().to(p)
    albedo = rgb_parts[obj.shape.part_index(p)]
    to_light = F.normalize(light_pos - p, dim=-1)
    lambert = (n * to_light).sum(-1, keepdim=True).clamp_min(0.0)
    out = albedo * (mat.ambient + mat.diffuse * lambert)
    if mat.specular > 0:
        half = F.normalize(to_light - view_dir, dim=-1)
        spec = (n * half).sum(-1, keepdim=True).clamp_min(0.0) ** mat.shininess
        out = out + mat.specular * spec * (lambert > 0)
    return out.clamp(0.0, 1.0)


def _background(background: Background, like: Tensor) -> Tensor:
    bg = torch.as_tensor(background, dtype=like.dtype, device=like.device)
    if bg.ndim == 0:
        bg = bg.expand(3)
    if bg.shape[-1] != 3:
        raise ValueError(f"background: expected a grey level or an RGB triple, got shape {tuple(bg.shape)}")
    return bg


@torch.no_grad()
def render_world(
    objects: Union[WorldObject, Sequence[WorldObject]],
    cams: Cameras,
    background: Background = 1.0,
    ss: int = 1,
    settings: TraceSettings = TraceSettings(),
) -> RenderOutput:
    """Render ``objects`` (one for every camera, or a sequence with one per camera) seen by
    ``cams``. ``background``: grey level, RGB triple or [B, 3] (default white). ``ss``: sub-pixels
    per side (2 gives soft alpha edges at 4x the cost)."""
    b = len(cams)
    if isinstance(objects, WorldObject):
        objects = [objects] * b
    if len(objects) != b:
        raise ValueError(f"objects: expected one object or {b} (one per camera), got {len(objects)}")
    if ss < 1:
        raise ValueError(f"ss: expected a supersampling factor >= 1, got {ss}")
    h, w = cams.height, cams.width
    hs, ws = h * ss, w * ss
    origins, dirs = camera_rays(cams.resized(hs, ws))
    o_all = origins.reshape(b, hs * ws, 3)
    d_all = dirs.reshape(b, hs * ws, 3)
    rgb = torch.zeros(b, hs * ws, 3, device=cams.device)
    alpha = torch.zeros(b, hs * ws, 1, device=cams.device)
    depth = torch.zeros(b, hs * ws, 1, device=cams.device)
    normal = torch.zeros(b, hs * ws, 3, device=cams.device)
    groups: dict[tuple[str, str, str], list[int]] = {}
    for i, obj in enumerate(objects):
        groups.setdefault((obj.name, obj.colour, obj.material), []).append(i)
    for members in groups.values():
        obj = objects[members[0]]
        sel = torch.tensor(members, device=cams.device)
        o = o_all[sel].reshape(-1, 3)
        d = d_all[sel].reshape(-1, 3)
        hit, t = trace_object(obj, o, d, settings)
        hit_idx = torch.nonzero(hit).squeeze(-1)
        p = o[hit_idx] + t[hit_idx, None] * d[hit_idx]
        nrm = _normals(obj, p, settings.normal_eps)
        light = cams.light_pos[sel].repeat_interleave(hs * ws, dim=0)[hit_idx]
        col = _shade(obj, p, nrm, d[hit_idx], light)
        g_rgb = torch.zeros(o.shape[0], 3, device=cams.device)
        g_nrm = torch.zeros(o.shape[0], 3, device=cams.device)
        g_rgb[hit_idx], g_nrm[hit_idx] = col, nrm
        rgb[sel] = g_rgb.reshape(len(members), hs * ws, 3)
        normal[sel] = g_nrm.reshape(len(members), hs * ws, 3)
        alpha[sel] = hit.to(alpha.dtype).reshape(len(members), hs * ws, 1)
        depth[sel] = (t * hit).reshape(len(members), hs * ws, 1)
    rgb, alpha, depth, normal = (x.reshape(b, hs, ws, -1) for x in (rgb, alpha, depth, normal))
    if ss > 1:
        pool = lambda x: F.avg_pool2d(x.permute(0, 3, 1, 2), ss).permute(0, 2, 3, 1)  # noqa: E731
        rgb, alpha, depth, normal = pool(rgb), pool(alpha), pool(depth), pool(normal)
        covered = alpha > 0
        depth = torch.where(covered, depth / alpha.clamp_min(1e-8), torch.zeros_like(depth))
        normal = torch.where(covered, F.normalize(normal, dim=-1), torch.zeros_like(normal))
        rgb = torch.where(covered, rgb / alpha.clamp_min(1e-8), torch.zeros_like(rgb))
    bg = _background(background, rgb)
    bg = bg[:, None, None, :] if bg.ndim == 2 else bg
    rgb = rgb * alpha + bg * (1.0 - alpha)
    return RenderOutput(rgb=rgb.contiguous(), alpha=alpha.contiguous(), depth=depth.contiguous(), normal=normal.contiguous())


def measure_render_rate(
    objects: Sequence[WorldObject], size: int, batch: int = 64, ss: int = 1, repeats: int = 3, seed: int = 0
) -> float:
    """Images per second of :func:`render_world` on random cameras (median of ``repeats`` runs),
    cycling through ``objects``."""
    from ui3d.cameras import sample_random_cameras

    gen = torch.Generator().manual_seed(seed)
    cams = sample_random_cameras(batch, size, generator=gen)
    objs = [objects[i % len(objects)] for i in range(batch)]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        render_world(objs, cams, ss=ss)
        times.append(time.perf_counter() - start)
    times.sort()
    return batch / times[len(times) // 2]
