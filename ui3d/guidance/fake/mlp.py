"""A small fake score with a discriminator, for low-dimensional benchmarks.

EDM-preconditioned denoiser D(x;σ) = c_skip·x + c_out·F(c_in·x, c_noise), and a discriminator
logit(c_in·x, c_noise) whose BCE optimum is log(p_t/q_t) (§1.5). For images the discriminator is a
head on the fake-score U-Net's encoder; for this MLP a shared trunk was measured to give an
over-confident ratio (at σ = 4 its log-ratio std was 6.4 where the exact one is 0.9), so the
discriminator has its own trunk here.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ui3d.diffusion import NoiseLevel, edm_preconditioning, per_sample, x0_to_eps
from ui3d.guidance.fake.base import FakePrediction
from ui3d.teachers.protocol import Conditioning


def _mlp(width_in: int, hidden: int, depth: int, width_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = width_in
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.SiLU()]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, width_out))


class MLPFakeScore(nn.Module):
    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, sigma_data: float = 1.0):
        super().__init__()
        self.denoiser = _mlp(dim + 1, hidden, depth, dim)
        self.discriminator = _mlp(dim + 1, hidden, depth - 1, 1)
        self.sigma_data = sigma_data

    def predict(self, x_t: Tensor, level: NoiseLevel, cond: Conditioning = Conditioning(),
                with_logit: bool = True) -> FakePrediction:
        """ε̂ from the preconditioned denoiser at the EDM point x_t/α, σ/α; the logit from its own trunk."""
        alpha = per_sample(level.alpha, x_t)
        x, sigma = x_t / alpha, level.edm_sigma.reshape(-1, 1).to(x_t)
        pre = edm_preconditioning(sigma, self.sigma_data)
        inputs = torch.cat([pre.c_in * x, pre.c_noise.expand(x.shape[0], 1)], dim=1)
        denoised = pre.c_skip * x + pre.c_out * self.denoiser(inputs)
        logit = self.discriminator(inputs)[:, 0] if with_logit else None
        return FakePrediction(x0_to_eps(x_t, denoised, alpha, per_sample(level.sigma, x_t)), logit)
