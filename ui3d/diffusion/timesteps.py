"""Timestep / noise-level samplers. Each takes a torch.Generator (DESIGN rule 9)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .schedules import karras_sigma_from_t


@dataclass(frozen=True)
class UniformTimesteps:
    """Integer t ~ U[t_min·T, t_max(step)·T] with an annealed maximum (DreamFusion / ProlificDreamer).

    t_max ramps linearly from ``t_max`` to ``t_max_final`` between ``anneal_start`` and
    ``anneal_end`` (equal steps give a jump, e.g. ProlificDreamer's 0.98 → 0.5 at step 5000).
    """

    t_min: float = 0.02
    t_max: float = 0.98
    t_max_final: float | None = None
    anneal_start: int = 0
    anneal_end: int = 0

    def __post_init__(self) -> None:
        finals = [self.t_max] + ([self.t_max_final] if self.t_max_final is not None else [])
        if not all(0.0 <= self.t_min < m <= 1.0 for m in finals):
            raise ValueError(f"timesteps need 0 <= t_min < t_max <= 1, got t_min={self.t_min}, t_max={finals}")
        if self.anneal_end < self.anneal_start:
            raise ValueError(f"anneal_end ({self.anneal_end}) must be >= anneal_start ({self.anneal_start})")

    def max_at(self, step: int) -> float:
        if self.t_max_final is None or step < self.anneal_start:
            return self.t_max
        if step >= self.anneal_end:
            return self.t_max_final
        frac = (step - self.anneal_start) / (self.anneal_end - self.anneal_start)
        return self.t_max + frac * (self.t_max_final - self.t_max)

    def bounds(self, num_train_timesteps: int, step: int = 0) -> tuple[int, int]:
        """The smallest and largest integer timestep drawn at ``step``."""
        lo = int(math.ceil(self.t_min * num_train_timesteps))
        return lo, max(lo, int(self.max_at(step) * num_train_timesteps) - 1)

    def sample(self, n: int, num_train_timesteps: int, generator: torch.Generator, step: int = 0) -> Tensor:
        lo, hi = self.bounds(num_train_timesteps, step)
        return torch.randint(lo, hi + 1, (n,), generator=generator)

    def grid(self, num_train_timesteps: int, step: int = 0) -> Tensor:
        """Every timestep ``sample`` draws at ``step``, each once (they are equally likely)."""
        lo, hi = self.bounds(num_train_timesteps, step)
        return torch.arange(lo, hi + 1)


ALL_TIMESTEPS = UniformTimesteps(t_min=0.0, t_max=1.0)  # t ~ U{0..T−1}: denoising score matching


@dataclass(frozen=True)
class LogNormalSigma:
    """EDM's training distribution: log σ ~ N(p_mean, p_std²)."""

    p_mean: float = -1.2
    p_std: float = 1.2

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        return (self.p_mean + self.p_std * torch.randn(n, generator=generator)).exp()


@dataclass(frozen=True)
class SiDSigma:
    """SiD's generator noise: t ~ U[0, t_max] mapped through the Karras ρ-map (σ ∈ [σ_min, ≈24.4])."""

    t_max: float = 0.8
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        return self.sigma_at(torch.rand(n, generator=generator))

    def sigma_at(self, quantile: Tensor) -> Tensor:
        """σ at the given quantiles of the distribution (``sample`` is this at uniform draws)."""
        return karras_sigma_from_t(quantile * self.t_max, self.sigma_min, self.sigma_max, self.rho)

    def cdf(self, sigma: Tensor) -> Tensor:
        """The share of draws at or below σ (the inverse of ``sigma_at``, clamped to [0, 1])."""
        lo, hi = self.sigma_min ** (1 / self.rho), self.sigma_max ** (1 / self.rho)
        return ((sigma ** (1 / self.rho) - lo) / (hi - lo) / self.t_max).clamp(0, 1)


@dataclass(frozen=True)
class LogUniformSigma:
    """log σ ~ U[log σ_min, log σ_max]: the weight uniform in log σ of §6.2."""

    sigma_min: float = 0.05
    sigma_max: float = 3.0

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        return self.sigma_at(torch.rand(n, generator=generator))

    def sigma_at(self, quantile: Tensor) -> Tensor:
        """σ at the given quantiles of the distribution (``sample`` is this at uniform draws)."""
        return (math.log(self.sigma_min) + quantile * math.log(self.sigma_max / self.sigma_min)).exp()
