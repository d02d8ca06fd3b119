import math

import pytest
import torch

from ui3d.world.captions import parse_prompt
from ui3d.world.ground_truth import (
    colour_at,
    grid_coordinates,
    occupancy_grid,
    part_colours,
    surface_samples,
)
from ui3d.world.objects import OBJECTS, make_object
from ui3d.world.palette import COLOURS, PART_COLOURS


def test_cube_occupancy_has_the_right_volume():
    occ = occupancy_grid("a cube", resolution=128, bound=1.0)
    assert occ.shape == (128, 128, 128) and occ.dtype == torch.bool
    side = 0.56
    assert occ.float().mean().item() == pytest.approx(side**3 / 2.0**3, rel=0.02)
    occ = occupancy_grid(make_object("sphere"), resolution=96, bound=0.5)
    assert occ.float().mean().item() == pytest.approx(4 / 3 * math.pi * 0.4**3, rel=0.02)


def test_occupancy_is_indexed_x_y_z():
    c = grid_coordinates(64, 0.5)
    occ = occupancy_grid("a mug", resolution=64, bound=0.5)
    # the handle is on +y: more occupied cells at y > 0 than at y < 0
    assert occ[:, c > 0, :].sum() > occ[:, c < 0, :].sum() + 50
    # the tree is taller (z) than wide (x)
    occ = occupancy_grid("a tree", resolution=64, bound=0.5)
    extent = [c[occ.any(dim=tuple(j for j in range(3) if j != axis))] for axis in range(3)]
    assert (extent[2].max() - extent[2].min()) > (extent[0].max() - extent[0].min()) + 0.1


def test_surface_samples_lie_on_the_surface_with_outward_normals():
    obj = make_object("sphere")
    s = surface_samples(obj, 2000, torch.Generator().manual_seed(0))
    assert s.points.shape == s.normals.shape == s.colours.shape == (2000, 3)
    assert (s.points.norm(dim=-1) - 0.4).abs().max() < 1e-4
    assert torch.nn.functional.cosine_similarity(s.normals, s.points, dim=-1).min() > 0.999
    # about uniform on the sphere: each octant holds about 1/8 of the points
    octant = (s.points > 0).long() @ torch.tensor([1, 2, 4])
    assert torch.bincount(octant, minlength=8).min() > 2000 / 8 * 0.75
    again = surface_samples(obj, 2000, torch.Generator().manual_seed(0))
    assert torch.equal(s.points, again.points)


@pytest.mark.parametrize("name", list(OBJECTS))
def test_every_object_is_inside_the_unit_half_sphere_and_centred(name):
    obj = make_object(name)
    s = surface_samples(obj, 1500, torch.Generator().manual_seed(1))
    assert obj.sdf(s.points).abs().max() < 1e-4
    assert (s.normals.norm(dim=-1) - 1).abs().max() < 1e-4
    assert s.points.norm(dim=-1).max() <= 0.5
    centre = (s.points.amax(0) + s.points.amin(0)) / 2
    assert centre.norm() < 0.1
    outside = obj.sdf(s.points + 0.005 * s.normals)
    assert (outside > 0).float().mean() > 0.97  # normals point out of the solid


def test_part_colours_follow_the_prompt_and_fixed_parts_keep_theirs():
    owl = parse_prompt("a ceramic owl")
    colours = part_colours(owl)
    assert colours["body"] == pytest.approx(PART_COLOURS["glaze"])
    assert colours["beak"] == pytest.approx(PART_COLOURS["beak"])
    red = part_colours("a red owl")
    assert red["head"] == pytest.approx(COLOURS["red"]) and red["beak"] == pytest.approx(PART_COLOURS["beak"])


def test_owl_face_is_on_plus_x_and_colour_at_uses_the_nearest_part():
    obj = make_object("owl", "blue")
    s = surface_samples(obj, 6000, torch.Generator().manual_seed(2))
    names = obj.shape.part_names
    beak = s.points[s.part == names.index("beak")]
    eyes = s.points[s.part == names.index("eyes")]
    assert beak.shape[0] > 10 and eyes.shape[0] > 10
    assert beak[:, 0].min() > 0.1 and eyes[:, 0].min() > 0.05
    assert torch.equal(colour_at(obj, s.points), s.colours)
    back_of_body = torch.tensor([[-0.22, 0.0, -0.12]])
    assert obj.sdf(back_of_body).abs() < 1e-3
    assert torch.allclose(colour_at(obj, back_of_body), torch.tensor([COLOURS["blue"]]))
    with pytest.raises(ValueError, match="dragon"):
        occupancy_grid("a dragon", 8)
    with pytest.raises(ValueError, match="subject"):
        occupancy_grid(3, 8)  # type: ignore[arg-type]
