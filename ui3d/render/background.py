"""Backgrounds: what a ray sees when the scene leaves it (partly) transparent.

Each background maps unit ray directions [..., 3] to colours [..., 3] in [0, 1]. ``random``
replaces the colour with a random one per image during training (augmentation: the object cannot
absorb the background into its own colour).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["BackgroundConfig", "Background", "make_background"]


@dataclass(frozen=True)
class BackgroundConfig:
    """``kind``: "solid" (``colour``), "random" (``colour`` at evaluation, a random colour per image
    with probability ``random_prob`` in training) or "mlp" (a small MLP on the direction; with
    ``random_prob`` > 0 also randomly replaced in training)."""

    kind: str = "solid"
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0)
    random_prob: float = 0.5
    hidden: int = 16

    def __post_init__(self) -> None:
        if self.kind not in ("solid", "random", "mlp"):
            raise ValueError(f"BackgroundConfig.kind: expected 'solid', 'random' or 'mlp', got {self.kind!r}")
        if not 0.0 <= self.random_prob <= 1.0:
            raise ValueError(f"BackgroundConfig.random_prob: expected a probability, got {self.random_prob}")


class Background(nn.Module):
    def __init__(self, cfg: BackgroundConfig = BackgroundConfig()):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("colour", torch.tensor(cfg.colour, dtype=torch.float32))
        self.mlp: nn.Module | None = None
        if cfg.kind == "mlp":
            self.mlp = nn.Sequential(nn.Linear(3, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 3))

    def forward(self, dirs: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Colours for ray directions ``dirs`` [B, H, W, 3]. ``generator`` given = training (random
        augmentation applies); None = evaluation."""
        if self.mlp is not None:
            out = torch.sigmoid(self.mlp(dirs))
        else:
            out = self.colour.to(dirs).expand(dirs.shape)
        if generator is not None and self.cfg.kind in ("random", "mlp") and self.cfg.random_prob > 0:
            b = dirs.shape[0]
            pick = torch.rand(b, generator=generator) < self.cfg.random_prob
            rand = torch.rand(b, 3, generator=generator)
            rand = rand.to(dirs)[:, None, None, :].expand(dirs.shape)
            out = torch.where(pick.to(dirs.device)[:, None, None, None], rand, out)
        return out


def make_background(cfg: BackgroundConfig) -> Background:
    return Background(cfg)
