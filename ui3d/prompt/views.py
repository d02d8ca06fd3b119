"""View-dependent prompt suffixes (threestudio style), chosen from the camera.

``front view`` when |azimuth| <= 45 deg, ``back view`` when |azimuth| >= 135 deg, ``side view``
otherwise, and ``overhead view`` whenever the elevation is above 60 deg. Azimuths are wrapped to
(-180, 180] first; azimuth 0 looks at the object's front (see :mod:`ui3d.cameras`).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

__all__ = [
    "VIEWS",
    "FRONT_MAX_DEG",
    "BACK_MIN_DEG",
    "OVERHEAD_MIN_ELEVATION_DEG",
    "view_suffix",
    "view_ids",
    "view_suffixes",
    "with_view_suffix",
    "view_prompts",
]

VIEWS: tuple[str, ...] = ("front view", "side view", "back view", "overhead view")
FRONT_MAX_DEG = 45.0
BACK_MIN_DEG = 135.0
OVERHEAD_MIN_ELEVATION_DEG = 60.0


def _wrap_half_open_above(azimuth: Tensor) -> Tensor:
    """Wrap to (-180, 180]."""
    return 180.0 - torch.remainder(180.0 - azimuth, 360.0)


def view_ids(azimuth_deg: Tensor, elevation_deg: Tensor) -> Tensor:
    """Index into :data:`VIEWS` for each camera: [B] long tensor (vectorised)."""
    az = _wrap_half_open_above(torch.as_tensor(azimuth_deg, dtype=torch.float64)).abs()
    el = torch.as_tensor(elevation_deg, dtype=torch.float64)
    ids = torch.ones(az.shape, dtype=torch.long, device=az.device)  # side
    ids = torch.where(az <= FRONT_MAX_DEG, torch.zeros_like(ids), ids)
    ids = torch.where(az >= BACK_MIN_DEG, torch.full_like(ids, 2), ids)
    ids = torch.where(el > OVERHEAD_MIN_ELEVATION_DEG, torch.full_like(ids, 3), ids)
    return ids


def view_suffix(azimuth_deg: float, elevation_deg: float) -> str:
    """The view phrase for one camera, e.g. ``view_suffix(170, 10) == "back view"``."""
    return VIEWS[int(view_ids(torch.tensor(float(azimuth_deg)), torch.tensor(float(elevation_deg))))]


def view_suffixes(azimuth_deg: Tensor, elevation_deg: Tensor) -> list[str]:
    """The view phrase for each camera of a batch."""
    return [VIEWS[i] for i in view_ids(azimuth_deg, elevation_deg).reshape(-1).tolist()]


def with_view_suffix(prompt: str, view: str) -> str:
    """``"a red cube"`` + ``"side view"`` -> ``"a red cube, side view"``."""
    if view not in VIEWS:
        raise ValueError(f"view: expected one of {', '.join(VIEWS)}, got {view!r}")
    return f"{prompt.rstrip().rstrip('.').rstrip()}, {view}"


def view_prompts(prompt: str, views: Sequence[str] = VIEWS) -> list[str]:
    """The prompt with each view suffix, in :data:`VIEWS` order (for per-view embedding caches)."""
    return [with_view_suffix(prompt, v) for v in views]
