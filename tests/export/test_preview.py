"""The mesh preview's z-buffer against a brute-force one, on two threads."""

import numpy as np
import pytest
import torch

from ui3d.cameras import orbit_cameras, project_points
from ui3d.export.preview import nearest_fragments, render_mesh


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the suite runs on one; repeated-index writes went wrong on two
    yield
    torch.set_num_threads(before)


def _stacked_triangles(n: int, seed: int = 0):
    """n large triangles facing the camera (constant x), each at its own distance, each one
    colour (unshared vertices): many fragments land on every pixel."""
    rng = np.random.default_rng(seed)
    x = rng.permutation(np.linspace(-0.4, 0.4, n))  # distinct depths, drawn in random order
    corners = rng.uniform(-0.9, 0.9, size=(n, 3, 2))
    vertices = np.concatenate([np.repeat(x[:, None, None], 3, 1), corners], -1).reshape(-1, 3)
    faces = np.arange(3 * n).reshape(n, 3)
    colours = np.repeat(rng.uniform(0.05, 0.95, size=(n, 3)), 3, axis=0)
    return vertices.astype(np.float32), faces, colours.astype(np.float32)


def _brute_force(vertices, faces, colours, cams) -> np.ndarray:
    """Per pixel centre: every triangle's barycentrics (float64), the nearest covering one's colour."""
    uv, z = (t[0].double().numpy() for t in project_points(cams, torch.from_numpy(vertices)[None]))
    h, w = cams.height, cams.width
    py, px = np.mgrid[0:h, 0:w] + 0.5
    best = np.full((h, w), np.inf)
    image = np.ones((h, w, 3))
    for face in faces:
        (ax, ay), (bx, by), (cx, cy) = uv[face]
        det = (bx - ax) * (cy - ay) - (cx - ax) * (by - ay)
        l1 = ((px - ax) * (cy - ay) - (cx - ax) * (py - ay)) / det
        l2 = ((bx - ax) * (py - ay) - (px - ax) * (by - ay)) / det
        l0 = 1 - l1 - l2
        depth = l0 * z[face[0]] + l1 * z[face[1]] + l2 * z[face[2]]
        wins = (l0 >= 0) & (l1 >= 0) & (l2 >= 0) & (depth < best)
        best[wins] = depth[wins]
        image[wins] = colours[face[0]]
    return image


def test_nearest_fragments_picks_the_least_depth_then_the_first():
    pixel = torch.tensor([4, 1, 4, 4, 1, 0, 4])
    depth = torch.tensor([3.0, 2.0, 1.0, 5.0, 2.0, 7.0, 1.0])
    assert sorted(nearest_fragments(pixel, depth, 6).tolist()) == [1, 2, 5]  # ties: the lower index


def test_render_mesh_matches_a_brute_force_z_buffer_on_two_threads(two_threads):
    vertices, faces, colours = _stacked_triangles(60)
    cams = orbit_cameras(1, 48, elevation_deg=0.0, distance=2.5)  # azimuth 0: looking down -x
    image = render_mesh(vertices, faces, colours, cams, ambient=1.0, diffuse=0.0)[0]
    reference = _brute_force(vertices, faces, colours, cams)
    covered = (reference != 1.0).any(-1)
    assert covered.mean() > 0.5  # the test means something: most pixels have fragments to resolve
    wrong = np.abs(image - reference).max(-1) > 1e-5
    assert wrong.sum() == 0, f"{wrong.sum()} of {wrong.size} pixels differ from the brute-force z-buffer"
