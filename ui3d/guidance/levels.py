"""The noise levels each system's sampler draws, as a :class:`~ui3d.divergence.NoiseTable` for mode
``by_parts`` (its weights need the sampler's density over the levels)."""

from __future__ import annotations

import torch

from ui3d.diffusion import LogUniformSigma, SiDSigma, UniformTimesteps, VPSchedule, snap_sigma
from ui3d.divergence import NoiseTable

QUANTILES = 100_000  # draws at evenly spaced quantiles that stand for a continuous sampler


def _quantiles(n: int = QUANTILES) -> torch.Tensor:
    return (torch.arange(n, dtype=torch.float64) + 0.5) / n


def vp_levels(schedule: VPSchedule, timesteps: UniformTimesteps, step: int = 0) -> NoiseTable:
    """Text-to-3D: the integer timesteps of ``timesteps`` at ``step`` (annealing moves the top)."""
    alpha, sigma = schedule.alpha_sigma(timesteps.grid(schedule.num_train_timesteps, step))
    return NoiseTable.from_draws(alpha, sigma)


def snapped_sid_levels(sampler: SiDSigma, schedule: VPSchedule) -> NoiseTable:
    """Image distillation: SiD's σ, snapped to the teacher's timestep grid (each snapped level's
    probability is the share of quantiles that land on it)."""
    sigma = snap_sigma(schedule, sampler.sigma_at(_quantiles()).float()).double()
    return NoiseTable.from_draws(torch.ones_like(sigma), sigma)


def log_uniform_levels(sampler: LogUniformSigma, n: int = 1024) -> NoiseTable:
    """The 2-D benchmark: log σ uniform, stood for by ``n`` equally likely levels (a sample takes the
    nearest level's weight)."""
    sigma = sampler.sigma_at(_quantiles(n))
    return NoiseTable.from_draws(torch.ones_like(sigma), sigma)
