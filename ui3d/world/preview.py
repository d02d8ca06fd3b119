"""A contact sheet of the object library: every object from the front, side and back.

``python -m ui3d.world.preview docs/world_objects.png`` regenerates the picture in the docs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image, ImageDraw

from ui3d.cameras import cameras_from_spherical
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
    columns: int = 2,
    ss: int = 2,
) -> Image.Image:
    """Render every object (default colour, matte) from each view and save a labelled grid PNG.
    Objects are laid out in ``columns`` blocks of len(views) images each."""
    names = list(objects or OBJECTS)
    for v in views:
        if v not in VIEW_AZIMUTHS:
            raise ValueError(f"views: unknown view {v!r}; expected some of {', '.join(VIEW_AZIMUTHS)}")
    nv = len(views)
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
    tiles = (out.rgb.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    label_h = 14
    rows = (len(names) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * nv * size + (columns - 1) * 8, rows * (size + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, name in enumerate(names):
        r, c = divmod(k, columns)
        x0, y0 = c * (nv * size + 8), r * (size + label_h)
        draw.text((x0 + 3, y0 + 1), f"{name}: {', '.join(views)}", fill=(0, 0, 0))
        for j in range(nv):
            sheet.paste(Image.fromarray(tiles[k * nv + j]), (x0 + j * size, y0 + label_h))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return sheet


if __name__ == "__main__":  # pragma: no cover
    render_object_grid(sys.argv[1] if len(sys.argv) > 1 else "world_objects.png")
