"""Teachers as the guidance queries them (:class:`~ui3d.teachers.protocol.ScoreModel`): ε̂ at
x_t = α·x + σ·ε, classifier-free guided through the one :func:`~ui3d.teachers.protocol.cfg_combine`.

- :class:`GuidedTeacher`: a :class:`~ui3d.teachers.protocol.Teacher` (Stable Diffusion, the built-in
  teacher, the exact world teacher) at VP levels, with CFG and optional Perp-Neg (text-to-3D).
- :class:`GuidedNetwork`: a VP network ``forward(x_t, t, cond)`` asked at EDM levels, with CFG
  (one-step image distillation).
- :class:`MixtureTeacher`: a Gaussian mixture's closed-form ε̂ at any level (the 2-D benchmark).
"""

from __future__ import annotations

from torch import Tensor, nn

from ui3d.diffusion import NoiseLevel, VPSchedule, per_sample, vp_network_eps
from ui3d.diffusion.conversions import PREDICTIONS
from ui3d.teachers.exact import GaussianMixture
from ui3d.teachers.protocol import Conditioning, Teacher, guided_eps, guided_prediction


class GuidedTeacher:
    """A Teacher at integer timesteps; ``perp_neg_weight`` None leaves Perp-Neg off (negatives unused)."""

    def __init__(self, teacher: Teacher, scale: float, perp_neg_weight: float | None = None):
        self.teacher, self.scale, self.perp_neg_weight = teacher, scale, perp_neg_weight

    def unguided(self) -> "GuidedTeacher":
        """The same teacher without CFG or Perp-Neg (the conditional model alone)."""
        return GuidedTeacher(self.teacher, 1.0)

    def predict(self, x_t: Tensor, level: NoiseLevel, cond: Conditioning = Conditioning()) -> Tensor:
        if level.t is None:
            raise ValueError("a Teacher is queried at VP timesteps; this noise level has none (EDM)")
        if self.perp_neg_weight is None:
            return guided_eps(self.teacher, x_t, level.t, cond.cond, cond.uncond, self.scale, cameras=cond.cameras)
        return guided_eps(self.teacher, x_t, level.t, cond.cond, cond.uncond, self.scale, cond.negative,
                          self.perp_neg_weight, cond.cameras)


class GuidedNetwork(nn.Module):
    """A frozen VP network (ε-, v- or x0-prediction) at EDM noise levels, with CFG of ``scale``."""

    def __init__(self, network: nn.Module, schedule: VPSchedule, prediction: str = "epsilon", scale: float = 1.0):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction type '{prediction}' (choices: {', '.join(PREDICTIONS)})")
        self.network = network.eval().requires_grad_(False)
        self.schedule, self.prediction, self.scale = schedule, prediction, scale

    def unguided(self) -> "GuidedNetwork":
        """The same network without CFG (the conditional model alone)."""
        return GuidedNetwork(self.network, self.schedule, self.prediction, 1.0)

    def _eps(self, x: Tensor, sigma: Tensor, cond: Tensor | None) -> Tensor:
        return vp_network_eps(self.network, self.schedule, self.prediction, x, sigma, cond)

    def predict(self, x_t: Tensor, level: NoiseLevel, cond: Conditioning = Conditioning()) -> Tensor:
        x = x_t / per_sample(level.alpha, x_t)  # the EDM point (α = 1 for EDM levels)
        return guided_prediction(self._eps, x, level.edm_sigma, cond.cond, cond.uncond, self.scale)


class MixtureTeacher:
    """ε̂ = −σ·∇log p_t of a known Gaussian mixture (unconditional; no CFG)."""

    def __init__(self, mixture: GaussianMixture):
        self.mixture = mixture

    def predict(self, x_t: Tensor, level: NoiseLevel, cond: Conditioning = Conditioning()) -> Tensor:
        return -per_sample(level.sigma, x_t) * self.mixture.score(x_t, level.sigma, level.alpha)
