"""Volume rendering on dense ``[rays, samples]`` tensors (pure torch; the reference and CPU path).

Emission-absorption quadrature (NeRF): for samples with densities ``sigma_i`` and interval lengths
``delta_i``, ``alpha_i = 1 - exp(-sigma_i delta_i)``, transmittance ``T_i = prod_{j<i} (1 - alpha_j)``
and weights ``w_i = T_i alpha_i``; a ray's value is ``sum_i w_i v_i`` and its opacity ``sum_i w_i``.

Sampling: stratified samples between the ray's entry into and exit from the scene box; samples in
cells an :class:`OccupancyGrid` marks empty are never evaluated (their density is 0). On CUDA,
``nerfacc``'s estimator can replace the sampler (see :mod:`ui3d.scene.nerf`); these dense functions
are what nerfacc's ``render_weight_from_density`` computes, and the parity test compares them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "RaySamples",
    "render_weights",
    "accumulate",
    "ray_aabb",
    "stratified_samples",
    "OccupancyGrid",
    "nerfacc_available",
]


def render_weights(sigmas: Tensor, deltas: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Weights, transmittance (before each sample) and alphas, each [R, S]."""
    sigma_delta = sigmas * deltas
    alphas = 1.0 - torch.exp(-sigma_delta)
    # exclusive cumulative sum in log space: T_i = exp(-sum_{j<i} sigma_j delta_j)
    acc = torch.cumsum(sigma_delta, dim=-1)
    trans = torch.exp(-torch.cat([torch.zeros_like(acc[:, :1]), acc[:, :-1]], dim=-1))
    return trans * alphas, trans, alphas


def accumulate(weights: Tensor, values: Tensor | None = None) -> Tensor:
    """``sum_i w_i v_i`` per ray: values [R, S, C] -> [R, C]; values None -> opacity [R, 1]."""
    if values is None:
        return weights.sum(-1, keepdim=True)
    return (weights[..., None] * values).sum(-2)


def ray_aabb(origins: Tensor, dirs: Tensor, bound: float) -> tuple[Tensor, Tensor, Tensor]:
    """Entry and exit distances of rays [R, 3] through the box [-bound, bound]^3 (entry clamped at
    0) and whether they hit it, each [R]."""
    inv = 1.0 / torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    t0 = (-bound - origins) * inv
    t1 = (bound - origins) * inv
    near = torch.minimum(t0, t1).amax(-1).clamp_min(0.0)
    far = torch.maximum(t0, t1).amin(-1)
    hit = far > near
    return near, torch.where(hit, far, near), hit


@dataclass
class RaySamples:
    """Sample midpoints ``t`` and interval lengths ``delta``, each [R, S] (unit ray directions)."""

    t: Tensor
    delta: Tensor


def stratified_samples(
    near: Tensor, far: Tensor, n: int, generator: torch.Generator | None = None
) -> RaySamples:
    """n samples per ray in [near, far]: one uniform sample per equal bin with a generator
    (training), bin centres without (evaluation)."""
    r = near.shape[0]
    edges = torch.linspace(0.0, 1.0, n + 1, device=near.device, dtype=near.dtype)
    if generator is None:
        u = torch.full((r, n), 0.5, device=near.device, dtype=near.dtype)
    else:
        u = torch.rand(r, n, generator=generator, dtype=near.dtype).to(near.device)
    frac = edges[:-1] + (edges[1:] - edges[:-1]) * u
    length = (far - near)[:, None]
    t = near[:, None] + frac * length
    delta = torch.full_like(t, 1.0 / n) * length
    return RaySamples(t=t, delta=delta)


class OccupancyGrid(torch.nn.Module):
    """A coarse grid of densities over [-bound, bound]^3 (an exponential moving average of the
    scene's density) and the cells above a threshold. Samples in empty cells are skipped.

    Update rule (nerfacc's): every cell's EMA ``d <- max(decay * d, sigma(random point in cell))``;
    a cell is occupied when ``d > min(mean(d), threshold)``.
    """

    def __init__(self, resolution: int = 32, bound: float = 1.0, threshold: float = 0.01, decay: float = 0.95):
        super().__init__()
        if resolution < 2:
            raise ValueError(f"resolution: expected >= 2, got {resolution}")
        self.resolution = resolution
        self.bound = bound
        self.threshold = threshold
        self.decay = decay
        # starts fully occupied: nothing is skipped until the first update
        self.register_buffer("density", torch.zeros((resolution,) * 3))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("occupied", torch.ones((resolution,) * 3, dtype=torch.bool))

    def cell_index(self, points: Tensor) -> Tensor:
        """Cell index [..., 3] (clamped) of points [..., 3]."""
        r = self.resolution
        idx = ((points + self.bound) / (2 * self.bound) * r).floor().long()
        return idx.clamp(0, r - 1)

    def query(self, points: Tensor) -> Tensor:
        """Whether each point [..., 3] lies in an occupied cell (outside the box: False)."""
        idx = self.cell_index(points)
        inside = (points.abs() <= self.bound).all(-1)
        return self.occupied[idx[..., 0], idx[..., 1], idx[..., 2]] & inside

    @torch.no_grad()
    def update(self, density_fn, generator: torch.Generator | None = None, chunk: int = 1 << 15) -> float:
        """Refresh from ``density_fn(points [N, 3]) -> [N]``; returns the occupied fraction."""
        r = self.resolution
        dev = self.density.device
        idx = torch.stack(torch.meshgrid(*(torch.arange(r, device=dev),) * 3, indexing="ij"), -1).reshape(-1, 3)
        jitter = torch.rand(idx.shape[0], 3, generator=generator).to(dev)
        pts = (idx + jitter) / r * 2 * self.bound - self.bound
        sig = torch.cat([density_fn(pts[i : i + chunk]).reshape(-1) for i in range(0, pts.shape[0], chunk)])
        sig = sig.reshape(r, r, r).to(self.density)
        first = int(self.updates) == 0
        self.density.copy_(sig if first else torch.maximum(self.density * self.decay, sig))
        self.updates += 1
        level = min(float(self.density.mean()), self.threshold)
        self.occupied.copy_(self.density > level)
        return float(self.occupied.float().mean())


def nerfacc_available() -> bool:
    try:
        import nerfacc  # noqa: F401
    except Exception:
        return False
    return True
