"""Noise schedules: the VP schedule of Stable Diffusion and EDM/Karras σ (UNI_INSTRUCT.md §1.1, §1.6).

x_t = α_t·x_0 + σ_t·ε. VP: α_t = √ᾱ_t, σ_t = √(1−ᾱ_t). EDM (VE): α = 1, σ free; a VP step t has
the EDM noise level σ_t/α_t.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class VPSchedule:
    """A discrete variance-preserving schedule given by ᾱ_t for t = 0..T−1."""

    alphas_cumprod: Tensor

    @staticmethod
    def scaled_linear(num_train_timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012) -> "VPSchedule":
        """Stable Diffusion's schedule (diffusers' "scaled_linear")."""
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float64) ** 2
        return VPSchedule(torch.cumprod(1.0 - betas, dim=0).float())

    @staticmethod
    def linear(num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> "VPSchedule":
        """DDPM's linear schedule."""
        betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
        return VPSchedule(torch.cumprod(1.0 - betas, dim=0).float())

    @property
    def num_train_timesteps(self) -> int:
        return self.alphas_cumprod.shape[0]

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """α_t and σ_t for integer timesteps t (any shape)."""
        a_bar = self.alphas_cumprod.to(t.device)[t.long()]
        return a_bar.sqrt(), (1.0 - a_bar).sqrt()

    def edm_sigma(self, t: Tensor) -> Tensor:
        """The equivalent VE noise level σ_t/α_t."""
        alpha, sigma = self.alpha_sigma(t)
        return sigma / alpha

    def timestep_for_edm_sigma(self, sigma: Tensor) -> Tensor:
        """The integer timestep whose EDM σ is nearest (in log σ) to the given one."""
        table = self.edm_sigma(torch.arange(self.num_train_timesteps)).to(sigma.device).log()
        return (sigma.log()[..., None] - table).abs().argmin(-1)


def snap_sigma(schedule: VPSchedule, sigma: Tensor) -> Tensor:
    """The EDM noise levels of the schedule's timesteps nearest (in log σ) to ``sigma``: a VP network
    queried at an EDM σ runs at a timestep of its own grid, so σ must lie on that grid."""
    return schedule.edm_sigma(schedule.timestep_for_edm_sigma(sigma)).to(sigma)


def karras_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> Tensor:
    """EDM's sampling grid, descending from σ_max to σ_min (n ≥ 1)."""
    if n < 1:
        raise ValueError(f"karras_sigmas needs n >= 1, got {n}")
    ramp = torch.linspace(0, 1, n) if n > 1 else torch.zeros(1)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho


def karras_sigma_from_t(t: Tensor, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> Tensor:
    """SiD's map of t ∈ [0, 1] to σ: t = 0 → σ_min, t = 1 → σ_max (t = 0.8 → ≈ 24.4)."""
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + (1 - t) * (lo - hi)) ** rho


def edm_loss_weight(sigma: Tensor, sigma_data: float = 0.5) -> Tensor:
    """λ_EDM(σ) = (σ² + σ_d²)/(σ·σ_d)²: unit-variance denoiser loss across noise levels."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


@dataclass(frozen=True)
class EDMPreconditioning:
    """c_skip, c_out, c_in, c_noise of Karras et al. (2022): D(x;σ) = c_skip·x + c_out·F(c_in·x; c_noise)."""

    c_skip: Tensor
    c_out: Tensor
    c_in: Tensor
    c_noise: Tensor


def edm_preconditioning(sigma: Tensor, sigma_data: float = 0.5) -> EDMPreconditioning:
    var = sigma**2 + sigma_data**2
    return EDMPreconditioning(
        c_skip=sigma_data**2 / var,
        c_out=sigma * sigma_data / var.sqrt(),
        c_in=1 / var.sqrt(),
        c_noise=sigma.log() / 4,
    )
