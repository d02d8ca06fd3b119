"""Colours and materials of the built-in world.

``COLOURS`` are the colour words of the prompt grammar. ``PART_COLOURS`` adds fixed colours that
object parts use (eyes, beaks, trunks, ...) and that are not prompt words. A material word without
a colour word picks the material's default colour if it has one (ceramic: an off-white glaze),
otherwise the object's own default colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["COLOURS", "PART_COLOURS", "Material", "MATERIALS", "DEFAULT_MATERIAL", "colour_rgb", "material"]

# Prompt colour words -> linear-ish sRGB in [0, 1].
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.84, 0.12, 0.12),
    "orange": (0.96, 0.50, 0.08),
    "yellow": (0.97, 0.84, 0.12),
    "green": (0.16, 0.62, 0.20),
    "blue": (0.14, 0.32, 0.86),
    "purple": (0.52, 0.20, 0.72),
    "pink": (0.96, 0.52, 0.70),
    "brown": (0.50, 0.30, 0.14),
    "white": (0.93, 0.93, 0.93),
    "black": (0.09, 0.09, 0.09),
    "gray": (0.52, 0.52, 0.52),
}

# Fixed part colours (not prompt words).
PART_COLOURS: dict[str, tuple[float, float, float]] = {
    "glaze": (0.94, 0.92, 0.85),  # off-white ceramic glaze
    "cream": (0.96, 0.89, 0.72),
    "beak": (0.98, 0.62, 0.10),
    "wood": (0.36, 0.22, 0.11),
    "roof": (0.58, 0.16, 0.12),
    "glass": (0.55, 0.80, 0.95),
    "eye": (0.98, 0.98, 0.94),
    "pupil": (0.05, 0.05, 0.05),
    "fin": (0.82, 0.12, 0.10),
    "metal": (0.40, 0.40, 0.44),
}


@dataclass(frozen=True)
class Material:
    """Shading parameters: ``rgb = albedo * (ambient + diffuse * max(n.l, 0))
    + specular * max(n.h, 0) ** shininess`` (Blinn-Phong, white light)."""

    name: str
    ambient: float
    diffuse: float
    specular: float
    shininess: float
    default_colour: str | None = None


MATERIALS: dict[str, Material] = {
    "matte": Material("matte", ambient=0.35, diffuse=0.75, specular=0.0, shininess=1.0),
    "glossy": Material("glossy", ambient=0.30, diffuse=0.70, specular=0.55, shininess=60.0),
    "ceramic": Material(
        "ceramic", ambient=0.35, diffuse=0.68, specular=0.35, shininess=24.0, default_colour="glaze"
    ),
}
DEFAULT_MATERIAL = "matte"


def colour_rgb(name: str) -> Tensor:
    """RGB [3] of a colour word or a part colour."""
    if name in COLOURS:
        return torch.tensor(COLOURS[name])
    if name in PART_COLOURS:
        return torch.tensor(PART_COLOURS[name])
    raise ValueError(f"colour: unknown colour {name!r}; known colours: {', '.join(COLOURS)}")


def material(name: str) -> Material:
    if name not in MATERIALS:
        raise ValueError(f"material: unknown material {name!r}; known materials: {', '.join(MATERIALS)}")
    return MATERIALS[name]
