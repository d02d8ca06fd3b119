"""The noise levels each system's sampler draws, as a :class:`~ui3d.divergence.NoiseTable` for mode
``by_parts`` (its weights need the sampler's density over the levels)."""

from __future__ import annotations

import torch

from ui3d.diffusion import LogUniformSigma, SiDSigma, UniformTimesteps, VPSchedule
from ui3d.divergence import NoiseTable


def _quantiles(n: int) -> torch.Tensor:
    return (torch.arange(n, dtype=torch.float64) + 0.5) / n


def vp_levels(schedule: VPSchedule, timesteps: UniformTimesteps, step: int = 0) -> NoiseTable:
    """Text-to-3D: the integer timesteps of ``timesteps`` at ``step`` (annealing moves the top)."""
    alpha, sigma = schedule.alpha_sigma(timesteps.grid(schedule.num_train_timesteps, step))
    return NoiseTable.from_draws(alpha, sigma)


def snapped_sid_levels(sampler: SiDSigma, schedule: VPSchedule) -> NoiseTable:
    """Image distillation: SiD's σ, snapped to the teacher's timestep grid. ``snap_sigma`` takes the
    nearest level in log σ, so a level holds the draws between the geometric midpoints to its
    neighbours: its probability is the sampler's CDF across them."""
    grid = schedule.edm_sigma(torch.arange(schedule.num_train_timesteps)).double()
    edges = torch.cat([grid.new_zeros(1), (grid[1:] * grid[:-1]).sqrt(), grid.new_full((1,), float("inf"))])
    cdf = sampler.cdf(edges)
    return NoiseTable.from_levels(torch.ones_like(grid), grid, cdf[1:] - cdf[:-1])


def log_uniform_levels(sampler: LogUniformSigma, n: int = 1024) -> NoiseTable:
    """The 2-D benchmark: log σ uniform, stood for by ``n`` equally likely levels (a sample takes the
    nearest level's weight)."""
    sigma = sampler.sigma_at(_quantiles(n))
    return NoiseTable.from_draws(torch.ones_like(sigma), sigma)
