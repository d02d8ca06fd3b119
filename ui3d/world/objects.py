"""The object library of the built-in world.

Every object is a union of parts; a part is a signed distance function, a name and a colour role
(``MAIN`` = the prompt's colour, otherwise a fixed part colour from :mod:`ui3d.world.palette`).
Conventions (see :mod:`ui3d.cameras`): +z is up, the front faces +x, every object fits inside the
sphere of radius 0.5 around the origin and is centred near it. Parts that touch overlap a little,
so no internal face has SDF 0 (it would show up as a false surface in the ground truth).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import torch
from torch import Tensor

from ui3d.world import sdf as S
from ui3d.world.palette import COLOURS, DEFAULT_MATERIAL, PART_COLOURS, colour_rgb, material as get_material

__all__ = [
    "MAIN",
    "Part",
    "ObjectShape",
    "WorldObject",
    "PRIMITIVES",
    "COMPOSITES",
    "OBJECTS",
    "get_shape",
    "make_object",
]

MAIN = "main"
BOUND_RADIUS = 0.5


@dataclass(frozen=True)
class Part:
    name: str
    sdf: S.SDF
    colour: str = MAIN


@dataclass(frozen=True)
class ObjectShape:
    """A named union of parts with a default colour."""

    name: str
    parts: tuple[Part, ...]
    default_colour: str
    bound_radius: float = BOUND_RADIUS

    def sdf(self, p: Tensor) -> Tensor:
        d = self.parts[0].sdf(p)
        for part in self.parts[1:]:
            d = torch.minimum(d, part.sdf(p))
        return d

    def part_sdfs(self, p: Tensor) -> Tensor:
        """Signed distance to each part, [..., P]."""
        return torch.stack([part.sdf(p) for part in self.parts], dim=-1)

    def part_index(self, p: Tensor) -> Tensor:
        """Index of the part nearest to each point (the part whose SDF is smallest), [...]."""
        return self.part_sdfs(p).argmin(dim=-1)

    @property
    def part_names(self) -> tuple[str, ...]:
        return tuple(part.name for part in self.parts)


@dataclass(frozen=True)
class WorldObject:
    """A shape with its appearance resolved: main colour name and material name."""

    shape: ObjectShape
    colour: str
    material: str

    @property
    def name(self) -> str:
        return self.shape.name

    def sdf(self, p: Tensor) -> Tensor:
        return self.shape.sdf(p)

    def part_colour_names(self) -> tuple[str, ...]:
        return tuple(self.colour if part.colour == MAIN else part.colour for part in self.shape.parts)

    def part_rgb(self) -> Tensor:
        """RGB of each part, [P, 3]."""
        return torch.stack([colour_rgb(c) for c in self.part_colour_names()])

    def part_colours(self) -> dict[str, tuple[float, float, float]]:
        """Part name -> RGB (the per-part ground-truth colours)."""
        return {
            part.name: tuple(colour_rgb(c).tolist())
            for part, c in zip(self.shape.parts, self.part_colour_names())
        }


# ---------------------------------------------------------------------------------------------
# Primitives


def _sphere() -> ObjectShape:
    return ObjectShape("sphere", (Part("sphere", lambda p: S.sphere(p, (0, 0, 0), 0.4)),), "gray")


def _cube() -> ObjectShape:
    return ObjectShape("cube", (Part("cube", lambda p: S.box(p, (0, 0, 0), (0.28, 0.28, 0.28))),), "gray")


def _cylinder() -> ObjectShape:
    return ObjectShape(
        "cylinder", (Part("cylinder", lambda p: S.cylinder(p, (0, 0, -0.33), (0, 0, 0.33), 0.3)),), "gray"
    )


def _cone() -> ObjectShape:
    return ObjectShape(
        "cone", (Part("cone", lambda p: S.cone(p, (0, 0, -0.3), (0, 0, 0.42), 0.36, 0.0)),), "gray"
    )


def _torus() -> ObjectShape:
    return ObjectShape("torus", (Part("torus", lambda p: S.torus(p, (0, 0, 0), 0.31, 0.12)),), "gray")


# ---------------------------------------------------------------------------------------------
# Composites


def _owl() -> ObjectShape:
    def ears(p: Tensor) -> Tensor:
        return torch.minimum(
            S.cone(p, (0.0, 0.1, 0.26), (-0.01, 0.14, 0.42), 0.06, 0.005),
            S.cone(p, (0.0, -0.1, 0.26), (-0.01, -0.14, 0.42), 0.06, 0.005),
        )

    def wings(p: Tensor) -> Tensor:
        return torch.minimum(
            S.ellipsoid(p, (-0.03, 0.2, -0.1), (0.15, 0.06, 0.21)),
            S.ellipsoid(p, (-0.03, -0.2, -0.1), (0.15, 0.06, 0.21)),
        )

    parts = (
        Part("body", lambda p: S.ellipsoid(p, (0.0, 0.0, -0.12), (0.22, 0.22, 0.27))),
        Part("belly", lambda p: S.ellipsoid(p, (0.07, 0.0, -0.15), (0.17, 0.16, 0.2)), "cream"),
        Part("wings", wings),
        Part("head", lambda p: S.ellipsoid(p, (0.01, 0.0, 0.16), (0.18, 0.2, 0.17))),
        Part("ears", ears),
        Part("eyes", lambda p: S.spheres(p, ((0.14, 0.08, 0.19), (0.14, -0.08, 0.19)), 0.068), "eye"),
        Part("pupils", lambda p: S.spheres(p, ((0.19, 0.08, 0.19), (0.19, -0.08, 0.19)), 0.036), "pupil"),
        Part("beak", lambda p: S.cone(p, (0.16, 0.0, 0.13), (0.27, 0.0, 0.09), 0.042, 0.004), "beak"),
        Part(
            "feet",
            lambda p: torch.minimum(
                S.ellipsoid(p, (0.12, 0.08, -0.38), (0.08, 0.05, 0.03)),
                S.ellipsoid(p, (0.12, -0.08, -0.38), (0.08, 0.05, 0.03)),
            ),
            "beak",
        ),
    )
    return ObjectShape("owl", parts, "brown")


def _snowman() -> ObjectShape:
    def body(p: Tensor) -> Tensor:
        return S.union(
            S.sphere(p, (0, 0, -0.27), 0.2),
            S.sphere(p, (0, 0, -0.01), 0.155),
            S.sphere(p, (0, 0, 0.19), 0.115),
        )

    def hat(p: Tensor) -> Tensor:
        return torch.minimum(
            S.cylinder(p, (0, 0, 0.27), (0, 0, 0.29), 0.12), S.cylinder(p, (0, 0, 0.28), (0, 0, 0.42), 0.075)
        )

    def eyes(p: Tensor) -> Tensor:
        return S.spheres(p, ((0.1, 0.045, 0.22), (0.1, -0.045, 0.22)), 0.022)

    def buttons(p: Tensor) -> Tensor:
        return S.spheres(p, ((0.15, 0, 0.01), (0.145, 0, -0.07)), 0.024)

    def arms(p: Tensor) -> Tensor:
        return torch.minimum(
            S.capsule(p, (0, 0.12, 0.02), (0, 0.31, 0.16), 0.02),
            S.capsule(p, (0, -0.12, 0.02), (0, -0.31, 0.16), 0.02),
        )

    parts = (
        Part("body", body),
        Part("hat", hat, "pupil"),
        Part("nose", lambda p: S.cone(p, (0.1, 0, 0.185), (0.24, 0, 0.175), 0.028, 0.003), "beak"),
        Part("eyes", eyes, "pupil"),
        Part("buttons", buttons, "pupil"),
        Part("scarf", lambda p: S.torus(p, (0, 0, 0.085), 0.105, 0.03), "fin"),
        Part("arms", arms, "wood"),
    )
    return ObjectShape("snowman", parts, "white")


def _mushroom() -> ObjectShape:
    cap_c, cap_r = (0.0, 0.0, 0.0), (0.42, 0.42, 0.32)

    def cap(p: Tensor) -> Tensor:
        return torch.maximum(S.ellipsoid(p, cap_c, cap_r), 0.01 - p[..., 2])

    spots = []
    for az, el in ((0, 40), (75, 55), (150, 35), (220, 50), (290, 30), (20, 75), (180, 70)):
        a, e = torch.deg2rad(torch.tensor(float(az))), torch.deg2rad(torch.tensor(float(el)))
        spots.append(
            (
                float(cap_r[0] * torch.cos(e) * torch.cos(a)),
                float(cap_r[1] * torch.cos(e) * torch.sin(a)),
                float(cap_r[2] * torch.sin(e)),
            )
        )

    def dots(p: Tensor) -> Tensor:
        return S.spheres(p, spots, 0.055)

    parts = (
        Part("cap", cap),
        Part("spots", dots, "white"),
        Part("stem", lambda p: S.cone(p, (0, 0, -0.4), (0, 0, 0.02), 0.15, 0.11), "cream"),
    )
    return ObjectShape("mushroom", parts, "red")


def _table() -> ObjectShape:
    def legs(p: Tensor) -> Tensor:
        return S.union(
            *[
                S.box(p, (sx * 0.19, sy * 0.3, -0.085), (0.035, 0.035, 0.195))
                for sx in (-1, 1)
                for sy in (-1, 1)
            ]
        )

    parts = (
        Part("top", lambda p: S.box(p, (0, 0, 0.12), (0.27, 0.38, 0.03), rounding=0.01)),
        Part("legs", legs),
    )
    return ObjectShape("table", parts, "brown")


def _mug() -> ObjectShape:
    def body(p: Tensor) -> Tensor:
        outer = S.cylinder(p, (0, 0, -0.26), (0, 0, 0.26), 0.24)
        inner = S.cylinder(p, (0, 0, -0.21), (0, 0, 0.4), 0.2)
        return S.subtract(outer, inner)

    def handle(p: Tensor) -> Tensor:
        # torus with its axis along x, on the +y side, minus the part inside the cup
        ring = S.torus(
            S.rotate(S.translate(p, (0, 0.26, 0)), S.rotation_matrix("y", 90)), (0, 0, 0), 0.13, 0.035
        )
        return S.subtract(ring, S.cylinder(p, (0, 0, -0.3), (0, 0, 0.3), 0.23))

    return ObjectShape("mug", (Part("body", body), Part("handle", handle)), "blue")


def _tree() -> ObjectShape:
    def foliage(p: Tensor) -> Tensor:
        return S.union(
            S.cone(p, (0, 0, -0.24), (0, 0, 0.08), 0.34, 0.06),
            S.cone(p, (0, 0, -0.06), (0, 0, 0.25), 0.27, 0.04),
            S.cone(p, (0, 0, 0.1), (0, 0, 0.46), 0.2, 0.0),
        )

    parts = (
        Part("foliage", foliage),
        Part("trunk", lambda p: S.cylinder(p, (0, 0, -0.45), (0, 0, -0.2), 0.065), "wood"),
    )
    return ObjectShape("tree", parts, "green")


def _house() -> ObjectShape:
    wall_c, wall_h = (0.0, 0.0, -0.135), (0.22, 0.28, 0.185)  # top 0.01 inside the roof
    eave_z, ridge_z, roof_x, roof_y = 0.04, 0.3, 0.28, 0.32

    def roof(p: Tensor) -> Tensor:
        slope = (ridge_z - eave_z, 0.0, roof_x)  # outward normal of the +x face (unnormalised)
        front = S.half_space(p, slope, _plane_offset(slope, (roof_x, 0.0, eave_z)))
        back = S.half_space(
            p, (-slope[0], 0.0, slope[2]), _plane_offset((-slope[0], 0.0, slope[2]), (-roof_x, 0.0, eave_z))
        )
        return S.intersect(front, back, eave_z - p[..., 2], p[..., 1].abs() - roof_y)

    def windows(p: Tensor) -> Tensor:
        return S.union(
            S.box(p, (0.22, 0.16, -0.1), (0.012, 0.055, 0.05)),
            S.box(p, (0.22, -0.16, -0.1), (0.012, 0.055, 0.05)),
            S.box(p, (0.0, 0.28, -0.1), (0.06, 0.012, 0.05)),
            S.box(p, (0.0, -0.28, -0.1), (0.06, 0.012, 0.05)),
        )

    parts = (
        Part("walls", lambda p: S.box(p, wall_c, wall_h)),
        Part("roof", roof, "roof"),
        Part("chimney", lambda p: S.box(p, (-0.08, 0.15, 0.24), (0.04, 0.04, 0.12)), "roof"),
        Part("door", lambda p: S.box(p, (0.22, 0.0, -0.21), (0.014, 0.06, 0.11)), "wood"),
        Part("windows", windows, "glass"),
    )
    return ObjectShape("house", parts, "yellow")


def _plane_offset(normal: tuple[float, float, float], point: tuple[float, float, float]) -> float:
    n = torch.tensor(normal, dtype=torch.float64)
    n = n / n.norm()
    return float((n * torch.tensor(point, dtype=torch.float64)).sum())


def _rocket() -> ObjectShape:
    fin_dirs = [(0.7071, 0.7071), (-0.7071, 0.7071), (-0.7071, -0.7071), (0.7071, -0.7071)]

    def fins(p: Tensor) -> Tensor:
        ds = []
        for cx, cy in fin_dirs:
            # rotate into the fin's frame: u along the fin direction, v across it
            u = p[..., 0] * cx + p[..., 1] * cy
            v = -p[..., 0] * cy + p[..., 1] * cx
            q = torch.stack([u, v, p[..., 2]], dim=-1)
            slab = S.box(q, (0.18, 0.0, -0.26), (0.1, 0.014, 0.12))
            ds.append(
                S.intersect(
                    slab, S.half_space(q, (1.0, 0.0, 0.9), _plane_offset((1.0, 0.0, 0.9), (0.16, 0.0, -0.1)))
                )
            )
        return S.union(*ds)

    parts = (
        Part("body", lambda p: S.cylinder(p, (0, 0, -0.28), (0, 0, 0.16), 0.14)),  # top inside the nose
        Part("nose", lambda p: S.cone(p, (0, 0, 0.14), (0, 0, 0.45), 0.14, 0.0), "fin"),
        Part("window", lambda p: S.cylinder(p, (0.11, 0, 0.02), (0.15, 0, 0.02), 0.055), "glass"),
        Part("fins", fins, "fin"),
        Part("nozzle", lambda p: S.cone(p, (0, 0, -0.27), (0, 0, -0.36), 0.09, 0.11), "metal"),
    )
    return ObjectShape("rocket", parts, "white")


PRIMITIVES: dict[str, Callable[[], ObjectShape]] = {
    "sphere": _sphere,
    "cube": _cube,
    "cylinder": _cylinder,
    "cone": _cone,
    "torus": _torus,
}
COMPOSITES: dict[str, Callable[[], ObjectShape]] = {
    "owl": _owl,
    "snowman": _snowman,
    "mushroom": _mushroom,
    "table": _table,
    "mug": _mug,
    "tree": _tree,
    "house": _house,
    "rocket": _rocket,
}
OBJECTS: dict[str, Callable[[], ObjectShape]] = {**PRIMITIVES, **COMPOSITES}


@lru_cache(maxsize=None)
def get_shape(name: str) -> ObjectShape:
    if name not in OBJECTS:
        raise ValueError(f"object: unknown object {name!r}; the built-in world knows: {', '.join(OBJECTS)}")
    return OBJECTS[name]()


def make_object(name: str, colour: str | None = None, material: str | None = None) -> WorldObject:
    """A shape with its appearance resolved. Defaults: matte; the colour is the material's default
    colour if it has one (ceramic: off-white glaze), else the object's default colour."""
    shape = get_shape(name)
    mat = get_material(material or DEFAULT_MATERIAL)
    if colour is None:
        colour = mat.default_colour or shape.default_colour
    elif colour not in COLOURS and colour not in PART_COLOURS:
        raise ValueError(f"colour: unknown colour {colour!r}; known colours: {', '.join(COLOURS)}")
    return WorldObject(shape=shape, colour=colour, material=mat.name)
