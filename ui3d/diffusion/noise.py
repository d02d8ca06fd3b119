"""One draw of the forward process, x_t = α·x + σ·ε: the single convention of the guidance.

- VP (Stable Diffusion, the built-in teacher; text-to-3D): α_t = √ᾱ_t, σ_t = √(1−ᾱ_t) at integer
  timesteps t of a :class:`~ui3d.diffusion.VPSchedule`.
- EDM (variance-exploding; image and 2-D distillation): α = 1, σ free, no timestep.

Teachers and fake scores take a :class:`NoiseLevel` and convert at their own boundary (a VP network
asked at an EDM σ: :func:`~ui3d.diffusion.conversions.vp_network_eps`), so the losses exist once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .schedules import VPSchedule
from .timesteps import UniformTimesteps


def per_sample(v: Tensor, like: Tensor) -> Tensor:
    """A per-sample value [B] shaped to broadcast against ``like`` [B, ...]."""
    return v.reshape(-1, *([1] * (like.ndim - 1)))


@dataclass(frozen=True)
class NoiseLevel:
    """Per-sample α, σ [B] of x_t = α·x + σ·ε, and the VP timesteps t [B] they came from (None for EDM)."""

    alpha: Tensor
    sigma: Tensor
    t: Tensor | None = None

    @staticmethod
    def vp(schedule: VPSchedule, t: Tensor, like: Tensor) -> "NoiseLevel":
        """α_t, σ_t of integer timesteps t, on ``like``'s device and dtype."""
        alpha, sigma = schedule.alpha_sigma(t)
        return NoiseLevel(alpha.to(like), sigma.to(like), t)

    @staticmethod
    def edm(sigma: Tensor) -> "NoiseLevel":
        return NoiseLevel(torch.ones_like(sigma), sigma)

    @property
    def edm_sigma(self) -> Tensor:
        """The equivalent variance-exploding noise level σ/α."""
        return self.sigma / self.alpha


@dataclass(frozen=True)
class Noise:
    """A noise level and the drawn ε [B, ...] of one batch."""

    level: NoiseLevel
    eps: Tensor

    @staticmethod
    def edm(sigma: Tensor, eps: Tensor) -> "Noise":
        return Noise(NoiseLevel.edm(sigma), eps)

    def apply(self, x: Tensor) -> Tensor:
        """x_t = α·x + σ·ε."""
        return per_sample(self.level.alpha, x) * x + per_sample(self.level.sigma, x) * self.eps


def sample_vp_noise(schedule: VPSchedule, timesteps: UniformTimesteps, x: Tensor, generator: torch.Generator,
                    step: int = 0) -> Noise:
    """t from ``timesteps`` (annealed by ``step``), then ε ~ N(0, I) like x, both from ``generator``."""
    t = timesteps.sample(x.shape[0], schedule.num_train_timesteps, generator, step)
    eps = torch.randn(x.shape, generator=generator).to(x)
    return Noise(NoiseLevel.vp(schedule, t, x), eps)
