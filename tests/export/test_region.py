"""MeshRegion and Scene.keep_region: a finished scene renders only the space in and around its
exported mesh, so previews and videos lose the floaters that the mesh export dropped."""

import numpy as np
import pytest
import torch
import trimesh

from ui3d.cameras import orbit_cameras
from ui3d.encoding import HashGridConfig
from ui3d.export.mesh import Mesh, MeshRegion
from ui3d.scene import GaussianConfig, GaussianScene, HashGridNeRF, NeRFConfig
from ui3d.scene.base import load_scene, save_scene


def _sphere_mesh(radius: float, centre=(0.0, 0.0, 0.0)) -> Mesh:
    m = trimesh.creation.icosphere(subdivisions=3, radius=radius)
    v = (np.asarray(m.vertices) + np.asarray(centre)).astype(np.float32)
    return Mesh(vertices=v, faces=np.asarray(m.faces), colours=np.ones_like(v))


def test_region_of_a_sphere_is_the_ball_grown_by_the_margin():
    cell = 2.0 / 64
    points = torch.tensor([[0.0, 0.0, 0.3], [0.0, 0.0, 0.5 + 0.5 * cell], [0.0, 0.0, 0.5 + 1.5 * cell],
                           [0.0, 0.0, 0.5 + 4.0 * cell], [0.0, 0.0, 1.5]])
    tight = MeshRegion.from_mesh(_sphere_mesh(0.5), margin=0).contains(points)
    grown = MeshRegion.from_mesh(_sphere_mesh(0.5), margin=2).contains(points)
    assert tight.tolist() == [True, False, False, False, False]
    assert grown.tolist() == [True, True, True, False, False]  # outside the grid: never


def test_region_follows_an_off_centre_mesh():
    region = MeshRegion.from_mesh(_sphere_mesh(0.2, centre=(0.5, 0.0, 0.0)), margin=0)
    inside = region.contains(torch.tensor([[0.5, 0.0, 0.0], [-0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]))
    assert inside.tolist() == [True, False, False]


def _nerf():
    cfg = NeRFConfig(grid=HashGridConfig(levels=2, log2_table_size=10, max_resolution=32), samples_per_ray=32,
                     occupancy_resolution=8)
    return HashGridNeRF(cfg, generator=torch.Generator().manual_seed(0)).eval()


def test_nerf_renders_nothing_of_what_lies_outside_the_region():
    """The NeRF's start is a blob at the origin. A region of everything changes nothing; the half
    space left of the camera keeps exactly half the occupancy cells, the left of the image as it
    was and nothing on the right."""
    scene = _nerf()
    cams = orbit_cameras(1, 32, elevation_deg=0.0)
    right = cams.c2w[0, :3, 0]  # the camera's right axis (a world axis at azimuth 0, elevation 0)
    with torch.no_grad():
        before = scene.render(cams).alpha[0, ..., 0]
    assert scene.keep_region(lambda p: torch.ones(len(p), dtype=torch.bool)) == 1.0
    with torch.no_grad():
        assert torch.equal(scene.render(cams).alpha[0, ..., 0], before)
    assert scene.keep_region(lambda p: p @ right < 0.0) == 0.5
    with torch.no_grad():
        after = scene.render(cams).alpha[0, ..., 0]
    assert before[:, :12].max() > 0.2 and before[:, 20:].max() > 0.2  # the blob covers both sides
    assert torch.allclose(after[:, :12], before[:, :12], atol=1e-6)
    assert float(after[:, 20:].max()) == 0.0


def test_a_kept_nerf_region_survives_saving_and_loading(tmp_path):
    scene = _nerf()
    scene.keep_region(lambda p: p.norm(dim=-1) < 0.3)
    loaded = load_scene(save_scene(scene, tmp_path / "scene"))
    assert torch.equal(loaded.occupancy.occupied, scene.occupancy.occupied)
    assert 0 < int(loaded.occupancy.occupied.sum()) < 8**3


def test_gaussians_outside_the_region_are_dropped_and_the_rest_kept_exactly(tmp_path):
    scene = GaussianScene(GaussianConfig(num_init=400), generator=torch.Generator().manual_seed(0)).eval()
    means, colours = scene.means.detach().clone(), scene.colour_logits.detach().clone()
    inside = means[:, 2] > 0.0
    kept = scene.keep_region(lambda p: p[:, 2] > 0.0)
    assert kept == pytest.approx(inside.float().mean().item())
    assert torch.equal(scene.means.detach(), means[inside]) and torch.equal(scene.colour_logits.detach(), colours[inside])
    assert scene.seen.shape[0] == scene.num == int(inside.sum())
    with torch.no_grad():
        out = scene.render(orbit_cameras(2, 16))
    assert torch.isfinite(out.rgb).all()
    loaded = load_scene(save_scene(scene, tmp_path / "scene"))
    assert loaded.num == scene.num


def test_the_region_keeps_a_half_transparent_shell_margin():
    """Two 64³ cells of margin: a surface point that the export put one cell inside the true shell
    still has the shell around it in the region (why the margin exists)."""
    region = MeshRegion.from_mesh(_sphere_mesh(0.4))
    shell = torch.nn.functional.normalize(torch.randn(500, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    assert bool(region.contains(shell * (0.4 + 1.0 / 64)).all())
    assert not bool(region.contains(shell * (0.4 + 6.0 / 64)).any())
