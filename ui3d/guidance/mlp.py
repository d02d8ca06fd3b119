"""A small fake score with a discriminator head, for low-dimensional benchmarks.

EDM-preconditioned denoiser D(x;σ) = c_skip·x + c_out·F(c_in·x, c_noise); the discriminator logit is
a second head on the same trunk, the MLP analogue of "a head on the fake-score U-Net's encoder" (§1.5).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ui3d.diffusion import edm_preconditioning


class MLPFakeScore(nn.Module):
    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, sigma_data: float = 1.0):
        super().__init__()
        layers: list[nn.Module] = []
        width = dim + 1
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.trunk = nn.Sequential(*layers)
        self.denoise_head = nn.Linear(hidden, dim)
        self.logit_head = nn.Linear(hidden, 1)
        self.sigma_data = sigma_data

    def _features(self, x_t: Tensor, sigma: Tensor) -> tuple[Tensor, object]:
        pre = edm_preconditioning(sigma.reshape(-1, 1).to(x_t), self.sigma_data)
        return self.trunk(torch.cat([pre.c_in * x_t, pre.c_noise.expand(x_t.shape[0], 1)], dim=1)), pre

    def denoise(self, x_t: Tensor, sigma: Tensor) -> Tensor:
        h, pre = self._features(x_t, sigma)
        return pre.c_skip * x_t + pre.c_out * self.denoise_head(h)

    def log_ratio(self, x_t: Tensor, sigma: Tensor) -> Tensor:
        """The discriminator logit; at the BCE optimum it equals log(p_t/q_t)."""
        h, _ = self._features(x_t, sigma)
        return self.logit_head(h)[:, 0]
