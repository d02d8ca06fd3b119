"""HashGridNeRF: density and albedo heads on a multiresolution hash grid, volume rendered.

Density ``sigma(x) = softplus(gain * raw(x) + blob(x) + bias)`` with the Magic3D blob
``blob(x) = blob_density * (1 - |x| / blob_radius)`` (a soft ball at the start, so renders are not
empty); albedo ``sigmoid(raw_rgb(x))``. Normals are ``-grad sigma / |grad sigma|`` at each ray's
expected surface point: through autograd (differentiable) when training shading needs them
(lambertian, textureless), otherwise by central differences (no gradient).

Rendering marches stratified samples through the scene box and skips cells the occupancy grid
marks empty (pure torch; any device). With nerfacc importable on CUDA and ``use_nerfacc``, its
``OccGridEstimator`` samples instead.
"""

from __future__ import annotations

import math

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ui3d.cameras import Cameras, camera_rays
from ui3d.encoding import HashGrid, HashGridConfig
from ui3d.render.background import Background, BackgroundConfig
from ui3d.render.shading import SHADING_MODES, ShadingConfig, shade
from ui3d.render.types import RenderOutput
from ui3d.render.volume import (
    OccupancyGrid,
    accumulate,
    nerfacc_available,
    ray_aabb,
    render_weights,
    stratified_samples,
)
from ui3d.scene.base import SceneTraining

__all__ = ["NeRFConfig", "HashGridNeRF"]


@dataclass(frozen=True)
class NeRFConfig:
    grid: HashGridConfig = field(default_factory=HashGridConfig)
    hidden: int = 32
    bound: float = 1.0
    samples_per_ray: int = 32  # stratified over the box; 64 cost 2x per step for +0.01-0.03 proof IoU (docs/backends.md)
    density_bias: float = -1.0
    density_gain: float = 4.0  # multiplies the raw density output (a faster-moving density scale)
    blob_density: float = 10.0
    blob_radius: float = 0.5
    occupancy_resolution: int = 32
    occupancy_threshold: float = 0.01
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    shading: ShadingConfig = field(default_factory=ShadingConfig)
    backend: str = "auto"  # hash grid: auto | torch | tcnn
    use_nerfacc: bool = True  # sample with nerfacc's OccGridEstimator when it imports on CUDA
    surface_thickness: float = 0.1  # export: "solid" = half opaque over this length (world units)
    normal_eps: float = 0.01  # central-difference step for detached normals
    chunk: int = 1 << 16  # points per network call when not training

    def __post_init__(self) -> None:
        if self.samples_per_ray < 2:
            raise ValueError(f"NeRFConfig.samples_per_ray: expected >= 2, got {self.samples_per_ray}")
        if self.bound <= 0:
            raise ValueError(f"NeRFConfig.bound: expected > 0, got {self.bound}")
        from ui3d.config import check_ranges

        # upper bounds: memory grows with samples x rays and occupancy_resolution³
        check_ranges(self, samples_per_ray=(2, 1024), hidden=(1, 1024), occupancy_resolution=(1, 256),
                     occupancy_threshold=(0, None), chunk=(1, 1 << 24))


class HashGridNeRF(nn.Module):
    kind = "nerf"
    has_splats = False

    def __init__(self, cfg: NeRFConfig = NeRFConfig(), generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        self.encoding = HashGrid(cfg.grid, backend=cfg.backend, generator=generator)
        self.mlp = nn.Sequential(
            nn.Linear(self.encoding.output_dim, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 4)
        )
        if generator is not None:
            with torch.no_grad():
                for m in self.mlp:
                    if isinstance(m, nn.Linear):
                        bound = 1.0 / m.in_features**0.5
                        m.weight.copy_((torch.rand(m.weight.shape, generator=generator) * 2 - 1) * bound)
                        m.bias.zero_()
        self.background = Background(cfg.background)
        self.occupancy = OccupancyGrid(cfg.occupancy_resolution, cfg.bound, cfg.occupancy_threshold)

    # --- fields -------------------------------------------------------------------------------
    def _raw(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.mlp(self.encoding((x / self.cfg.bound + 1.0) * 0.5))
        r = x.norm(dim=-1)
        blob = self.cfg.blob_density * (1.0 - r / self.cfg.blob_radius)
        sigma = F.softplus(self.cfg.density_gain * h[:, 0] + blob + self.cfg.density_bias)
        return sigma, torch.sigmoid(h[:, 1:])

    def _chunked(self, fn, x: Tensor):
        """fn(x) in chunks of cfg.chunk points when no graph is kept (bounded memory for exports and
        videos); fn returns a tensor or a tuple of tensors."""
        if torch.is_grad_enabled() or x.shape[0] <= self.cfg.chunk:
            return fn(x)
        parts = [fn(x[i : i + self.cfg.chunk]) for i in range(0, x.shape[0], self.cfg.chunk)]
        if isinstance(parts[0], tuple):
            return tuple(torch.cat(p) for p in zip(*parts))
        return torch.cat(parts)

    def density(self, x: Tensor) -> Tensor:
        """Density at world points [N, 3] -> [N]."""
        return self._chunked(lambda p: self._raw(p)[0], x)

    def albedo(self, x: Tensor) -> Tensor:
        """Albedo at world points [N, 3] -> [N, 3] in [0, 1]."""
        return self._chunked(lambda p: self._raw(p)[1], x)

    def normals_fd(self, x: Tensor) -> Tensor:
        """Outward unit normals at points [N, 3] by central differences (no gradient)."""
        eps = self.cfg.normal_eps
        with torch.no_grad():
            offs = torch.eye(3, device=x.device, dtype=x.dtype) * eps
            pts = torch.cat([x[:, None] + offs, x[:, None] - offs], 1).reshape(-1, 3)
            d = self.density(pts).reshape(-1, 2, 3)
            grad = d[:, 0] - d[:, 1]
        return -F.normalize(grad, dim=-1)

    def surface_threshold(self, voxel_size: float) -> float:
        """Density at which a slab of matter ``max(voxel_size, surface_thickness)`` thick is half
        opaque: ``ln 2 / thickness``."""
        return math.log(2.0) / max(voxel_size, self.cfg.surface_thickness)

    def carved_threshold(self, voxel_size: float) -> float:
        """1/16 of :meth:`surface_threshold`: inside the visual hull, which sets the outline, a
        guided NeRF often holds a soft shell whose inside is faint, and that is the object too.
        Measured on saved bench scenes and the photometric proofs: docs/benchmarks.md "Export
        threshold" (e.g. generated cube 0.334 → 0.455, cone 0.254 → 0.415)."""
        return self.surface_threshold(voxel_size) / 16.0

    @torch.no_grad()
    def update_occupancy(self, generator: torch.Generator | None = None) -> float:
        return self.occupancy.update(self.density, generator)

    @torch.no_grad()
    def keep_region(self, contains) -> float:
        """Empty the occupancy cells with no point in the region (tested at each cell's 27 corner,
        edge, face and centre points, so a region reaching into a cell keeps it): rendering skips
        them. Training refreshes the grid, so this is for finished scenes. Returns the fraction of
        occupied cells kept."""
        occ = self.occupancy
        r = occ.resolution
        cells = torch.stack(torch.meshgrid(*(torch.arange(r),) * 3, indexing="ij"), -1).reshape(-1, 1, 3)
        offsets = torch.stack(torch.meshgrid(*(torch.linspace(0.0, 1.0, 3),) * 3, indexing="ij"), -1).reshape(1, -1, 3)
        points = ((cells + offsets) * (2.0 * occ.bound / r) - occ.bound).reshape(-1, 3).to(self.device)
        touched = contains(points).reshape(r, r, r, -1).any(-1).to(occ.occupied.device)
        before = int(occ.occupied.sum())
        occ.occupied &= touched
        return int(occ.occupied.sum()) / max(before, 1)

    # --- training ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.mlp[0].weight.device

    def param_groups(self, training: SceneTraining) -> list[dict]:
        """One group: every parameter at ``training.lr``."""
        return [{"params": list(self.parameters()), "lr": training.lr}]

    def maintain(self, step: int, training: SceneTraining, generator: torch.Generator | None = None) -> bool:
        """Refresh the occupancy grid every ``training.occupancy_every`` steps; the parameters
        never change, so this returns False."""
        if step % training.occupancy_every == 0:
            self.update_occupancy(generator)
        return False

    # --- rendering ----------------------------------------------------------------------------
    def render_rays(
        self,
        origins: Tensor,
        dirs: Tensor,
        shading: str = "albedo",
        light_pos: Tensor | None = None,
        generator: torch.Generator | None = None,
        normals: bool = True,
    ) -> dict[str, Tensor]:
        """Render rays [R, 3] (unit directions): albedo (premultiplied by opacity), opacity, depth,
        normal, points, each [R, C], before shading and background. ``generator`` given = training
        (stratified jitter); ``normals=False`` under albedo shading leaves the normals zero (they cost
        six density evaluations per surface ray and nothing reads them)."""
        if shading not in SHADING_MODES:
            raise ValueError(f"shading: expected one of {', '.join(SHADING_MODES)}, got {shading!r}")
        if self.cfg.use_nerfacc and origins.is_cuda and nerfacc_available():
            return self._render_rays_nerfacc(origins, dirs, shading, generator, normals)
        cfg = self.cfg
        near, far, hit = ray_aabb(origins, dirs, cfg.bound)
        samples = stratified_samples(near, far, cfg.samples_per_ray, generator)
        pts = origins[:, None, :] + samples.t[..., None] * dirs[:, None, :]  # [R, S, 3]
        keep = hit[:, None] & self.occupancy.query(pts)
        idx = keep.reshape(-1).nonzero().squeeze(-1)
        flat = pts.reshape(-1, 3)[idx]
        sig, alb = self._chunked(self._raw, flat) if flat.shape[0] else (flat.new_zeros(0), flat.new_zeros(0, 3))
        r, s = samples.t.shape
        sigmas = pts.new_zeros(r * s).index_put((idx,), sig).reshape(r, s)
        weights, _, _ = render_weights(sigmas, samples.delta)
        albedo = pts.new_zeros(r * s, 3).index_put((idx,), alb).reshape(r, s, 3)
        opacity = accumulate(weights)
        out_albedo = accumulate(weights, albedo)
        depth = accumulate(weights, samples.t[..., None]) / opacity.clamp_min(1e-6)
        return self._finish(out_albedo, opacity, depth, origins + depth * dirs, shading, normals)

    def surface_normals(self, points: Tensor) -> Tensor:
        """Outward unit normals ``-grad sigma / |grad sigma|`` at points [N, 3], differentiable in the
        field's parameters (double backward through the hash grid)."""
        with torch.enable_grad():
            p = points.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self._raw(p)[0].sum(), p, create_graph=True)
        return -F.normalize(grad, dim=-1)

    def _finish(self, albedo: Tensor, opacity: Tensor, depth: Tensor, points: Tensor, shading: str,
                normals: bool = True) -> dict[str, Tensor]:
        """Normals at each ray's expected surface point: differentiable when shading uses them in
        training (one field evaluation per ray, not per sample: measured several times cheaper than
        per-sample autograd normals), central differences otherwise."""
        normal = torch.zeros_like(points)
        surf = (opacity[:, 0] > 1e-3).nonzero().squeeze(-1)
        if surf.numel() and (normals or shading != "albedo"):
            if shading != "albedo" and torch.is_grad_enabled():
                normal = normal.index_put((surf,), self.surface_normals(points[surf]))
            else:
                normal[surf] = self.normals_fd(points[surf].detach())
        covered = opacity > 1e-6
        depth = torch.where(covered, depth, torch.zeros_like(depth))
        return {"albedo": albedo, "opacity": opacity, "depth": depth, "normal": normal * covered, "points": points}

    def _render_rays_nerfacc(self, origins: Tensor, dirs: Tensor, shading: str, generator: torch.Generator | None,
                             normals: bool = True) -> dict[str, Tensor]:
        """The same rendering with nerfacc's CUDA estimator (packed samples, occupancy skipping
        with our occupancy grid's cells)."""
        import nerfacc

        cfg = self.cfg
        if getattr(self, "_estimator", None) is None:
            b = cfg.bound
            self._estimator = nerfacc.OccGridEstimator([-b, -b, -b, b, b, b], cfg.occupancy_resolution).to(origins.device)
        est = self._estimator
        est.binaries = self.occupancy.occupied[None].to(origins.device)
        step = 2.0 * cfg.bound * math.sqrt(3.0) / cfg.samples_per_ray
        ray_idx, t0, t1 = est.sampling(origins, dirs, render_step_size=step, stratified=generator is not None)
        n = origins.shape[0]
        t_mid = 0.5 * (t0 + t1)
        pts = origins[ray_idx] + t_mid[:, None] * dirs[ray_idx]
        sig, alb = self._raw(pts)
        weights, _, _ = nerfacc.render_weight_from_density(t0, t1, sig, ray_indices=ray_idx, n_rays=n)
        acc = lambda v: nerfacc.accumulate_along_rays(weights, v, ray_indices=ray_idx, n_rays=n)  # noqa: E731
        opacity = acc(None)
        depth = acc(t_mid[:, None]) / opacity.clamp_min(1e-6)
        return self._finish(acc(alb), opacity, depth, origins + depth * dirs, shading, normals)

    def render(
        self,
        cameras: Cameras,
        shading: str = "albedo",
        generator: torch.Generator | None = None,
        background: Tensor | None = None,
        normals: bool = True,
    ) -> RenderOutput:
        """Render every pixel of ``cameras``. ``generator`` given = training (stratified samples,
        random background augmentation). ``background`` [B, 3] or [3] overrides the background
        model. ``normals=False``: the caller reads no normals (see :meth:`render_rays`)."""
        origins, dirs = camera_rays(cameras)
        b, h, w, _ = dirs.shape
        out = self.render_rays(origins.reshape(-1, 3), dirs.reshape(-1, 3), shading, generator=generator, normals=normals)
        view = lambda t: t.reshape(b, h, w, -1)  # noqa: E731
        albedo, alpha, depth, normal, points = (view(out[k]) for k in ("albedo", "opacity", "depth", "normal", "points"))
        albedo = albedo / alpha.clamp_min(1e-6)  # render_rays returns premultiplied albedo
        colour = shade(albedo, normal, points, cameras.light_pos, shading, self.cfg.shading)
        if background is None:
            bg = self.background(dirs, generator)
        else:
            bg = torch.as_tensor(background, dtype=dirs.dtype, device=dirs.device)
            bg = (bg if bg.ndim == 2 else bg.expand(b, 3))[:, None, None, :].expand(b, h, w, 3)
        rgb = colour * alpha + bg * (1.0 - alpha)
        # a rounding excess of the opacity above 1 must not leak out
        return RenderOutput(rgb=rgb.clamp(0.0, 1.0), alpha=alpha.clamp(0.0, 1.0), depth=depth, normal=normal)
