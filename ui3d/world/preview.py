"""A contact sheet of the object library: every object from the front, side and back, one row each.

``python -m ui3d.world.preview docs/world_objects.png`` regenerates the picture in the docs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import torch

from ui3d.cameras import cameras_from_spherical
from ui3d.errors import UserError, clip
from ui3d.images import save_grid
from ui3d.world.objects import OBJECTS, make_object
from ui3d.world.render import render_world

__all__ = ["VIEW_AZIMUTHS", "render_object_grid"]

VIEW_AZIMUTHS: dict[str, float] = {"front": 0.0, "side": 90.0, "back": 180.0}


def render_object_grid(
    path: str | Path,
    objects: Sequence[str] | None = None,
    views: Sequence[str] = ("front", "side", "back"),
    size: int = 96,
    elevation_deg: float = 20.0,
    ss: int = 2,
) -> Path:
    """Render every object (default colour, matte) from each view and save a grid PNG: one row
    per object, labelled with its name, one column per view."""
    names = list(objects or OBJECTS)
    for v in views:
        if v not in VIEW_AZIMUTHS:
            raise UserError(f"views: unknown view {clip(repr(v))}; expected some of {', '.join(VIEW_AZIMUTHS)}")
    az = torch.tensor([VIEW_AZIMUTHS[v] for v in views] * len(names))
    n = az.numel()
    cams = cameras_from_spherical(
        az, torch.full((n,), elevation_deg), torch.full((n,), 1.7), torch.full((n,), 40.0), size
    )
    # light above and to the front-left of each camera, like a studio key light
    key = cameras_from_spherical(
        az + 30.0, torch.full((n,), elevation_deg + 35.0), torch.full((n,), 3.0), cams.fovy_deg, size
    )
    cams = cameras_from_spherical(
        cams.azimuth_deg, cams.elevation_deg, cams.distance, cams.fovy_deg, size, light_pos=key.position
    )
    objs = [make_object(name) for name in names for _ in views]
    out = render_world(objs, cams, ss=ss)
    return save_grid(out.rgb.permute(0, 3, 1, 2), path, columns=len(views), scale=1, labels=names)


if __name__ == "__main__":  # pragma: no cover
    render_object_grid(sys.argv[1] if len(sys.argv) > 1 else "world_objects.png")
