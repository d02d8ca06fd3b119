"""systems.turn_width: silhouette widths, and the premise that the truth's width follows the turn."""

import torch

from systems.turn_width import silhouette_widths
from ui3d.cameras import cameras_from_spherical
from ui3d.world.captions import parse_prompt
from ui3d.world.render import render_world


def test_widths_count_covered_columns():
    masks = torch.zeros(2, 5, 6, dtype=torch.bool)
    masks[0, 1:3, 1:4] = True  # columns 1..3
    masks[1, 0, 0] = masks[1, 4, 5] = True  # two columns far apart
    assert silhouette_widths(masks) == [3, 2]


def _true_widths(obj: str) -> list[int]:
    n = 2
    widths = []
    for az in (0.0, 45.0):
        cams = cameras_from_spherical(torch.full((n,), az), torch.full((n,), 15.0), torch.full((n,), 1.75),
                                      torch.full((n,), 55.0), 32)
        widths.append(silhouette_widths(render_world(parse_prompt(f"a red {obj}").to_object(), cams).alpha[..., 0] > 0.5)[0])
    return widths


def test_a_cube_is_wider_along_its_diagonal_and_a_sphere_is_not():
    face, diagonal = _true_widths("cube")
    assert diagonal >= face + 2  # 14 against 12 pixels
    front, turned = _true_widths("sphere")
    assert front == turned
