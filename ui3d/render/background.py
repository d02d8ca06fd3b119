"""Backgrounds: what a ray sees when the scene leaves it (partly) transparent.

Each background maps unit ray directions [..., 3] to colours [..., 3] in [0, 1]. ``random``
replaces the colour with a random one per image during training (augmentation: the object cannot
absorb the background into its own colour).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["BackgroundConfig", "Background", "make_background", "muted_backgrounds"]

# The muted family: grey levels away from white (0.93) and black (0.09), so that white, off-white and
# black objects keep a silhouette; low saturation, so that no background passes for a colour word.
MUTED_VALUE = (0.25, 0.8)
MUTED_MAX_SATURATION = 0.3


def _muted_colours(n: int, generator: torch.Generator) -> Tensor:
    value = MUTED_VALUE[0] + (MUTED_VALUE[1] - MUTED_VALUE[0]) * torch.rand(n, 1, generator=generator)
    tint = torch.rand(n, 3, generator=generator)
    tint = tint / tint.amax(dim=1, keepdim=True)  # a hue, brightest channel 1
    saturation = MUTED_MAX_SATURATION * torch.rand(n, 1, generator=generator)
    return value * (1.0 - saturation * (1.0 - tint))


def muted_backgrounds(n: int, height: int, width: int, generator: torch.Generator) -> Tensor:
    """Random muted backgrounds [n, height, width, 3] in [0, 1]: per image a solid colour or (half of
    them) a vertical gradient between two, each colour of value in ``MUTED_VALUE`` and saturation at
    most ``MUTED_MAX_SATURATION``. The built-in teacher v2 is trained on these, and text-to-3D renders
    its backgrounds from the same family, so that any object colour has a silhouette."""
    top, bottom = _muted_colours(n, generator), _muted_colours(n, generator)
    solid = torch.rand(n, generator=generator) < 0.5
    bottom = torch.where(solid[:, None], top, bottom)
    ramp = torch.linspace(0.0, 1.0, height)[None, :, None, None]  # top to bottom of the image
    return (top[:, None, None, :] * (1.0 - ramp) + bottom[:, None, None, :] * ramp).expand(n, height, width, 3)


@dataclass(frozen=True)
class BackgroundConfig:
    """``kind``: "solid" (``colour``), "random" (``colour`` at evaluation, a random colour per image
    with probability ``random_prob`` in training), "muted" (``colour`` at evaluation, a random muted
    background per image in training: :func:`muted_backgrounds`, the family the built-in teacher v2
    was trained on) or "mlp" (a small MLP on the direction; with ``random_prob`` > 0 also randomly
    replaced in training)."""

    kind: str = "solid"
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0)
    random_prob: float = 0.5
    hidden: int = 16

    def __post_init__(self) -> None:
        if self.kind not in ("solid", "random", "muted", "mlp"):
            raise ValueError(f"BackgroundConfig.kind: expected 'solid', 'random', 'muted' or 'mlp', got {self.kind!r}")
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

    @property
    def varies_per_pixel(self) -> bool:
        """Whether a training background needs every pixel (a gradient), not one colour per image
        (the Gaussian renderer asks one direction per image otherwise)."""
        return self.cfg.kind == "muted"

    def forward(self, dirs: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Colours for ray directions ``dirs`` [B, H, W, 3]. ``generator`` given = training (random
        augmentation applies); None = evaluation."""
        if self.cfg.kind == "muted" and generator is not None:
            b, h, w, _ = dirs.shape
            return muted_backgrounds(b, h, w, generator).to(dirs)
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
