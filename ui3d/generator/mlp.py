"""A one-step MLP generator for low-dimensional benchmarks: x = G_θ(z)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MLPGenerator(nn.Module):
    def __init__(self, latent_dim: int = 8, out_dim: int = 2, hidden: int = 128, depth: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        width = latent_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)
        self.latent_dim = latent_dim

    def sample_latent(self, n: int, generator: torch.Generator) -> Tensor:
        return torch.randn(n, self.latent_dim, generator=generator)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)
