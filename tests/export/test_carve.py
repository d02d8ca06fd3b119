"""Silhouette carving: cameras, the hull by hand, the hull of true renders, and the exporter's use."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from ui3d.cameras import camera_rays, cameras_from_spherical, project_points
from ui3d.export import ExtractConfig, extract_mesh
from ui3d.export.carve import carving_cameras, fibonacci_directions, silhouette_hull
from ui3d.export.mesh import _cell_centres
from ui3d.metrics.geometry import iou
from ui3d.render.types import RenderOutput
from ui3d.world import make_object, occupancy_grid, render_world


def _unit(az, el):
    az, el = torch.deg2rad(az), torch.deg2rad(el)
    return torch.stack([el.cos() * az.cos(), el.cos() * az.sin(), el.sin()], -1)


def test_fibonacci_directions_cover_the_sphere_evenly():
    az, el = fibonacci_directions(64)
    d = _unit(az, el)
    assert el.max() < 90 and el.min() > -90 and abs(float(el.mean())) < 1e-4  # symmetric
    cos = d @ d.T - 2 * torch.eye(64)
    nearest = torch.rad2deg(torch.acos(cos.max(1).values.clamp(-1, 1)))
    # 64 equal caps of the sphere are ~29 degrees across: neighbours neither collide nor leave holes
    assert nearest.min() > 15 and nearest.max() < 30
    # every direction on the sphere has a view within 20 degrees
    probe = torch.nn.functional.normalize(torch.randn(2000, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    assert torch.rad2deg(torch.acos((probe @ d.T).max(1).values.clamp(-1, 1))).max() < 20
    with pytest.raises(ValueError, match="carving views"):
        fibonacci_directions(0)


def test_carving_cameras_frame_the_ball_with_a_small_margin():
    cams = carving_cameras(16, 64, radius=0.5, distance=3.0)
    # the top of the ball's outline from each camera: the point where a ray from the camera
    # touches the ball, r (r/d) towards the camera and r sqrt(1 - (r/d)^2) along image-up
    back, up = cams.c2w[:, :3, 2], cams.c2w[:, :3, 1]
    rim = (0.5 * (0.5 / 3) * back + 0.5 * math.sqrt(1 - (0.5 / 3) ** 2) * up)[:, None]
    uv, _ = project_points(cams, rim)
    row_from_centre = (32 - uv[..., 1]).abs()
    assert torch.all(row_from_centre < 32) and torch.all(row_from_centre > 32 / 1.06)
    with pytest.raises(ValueError, match="radius < distance"):
        carving_cameras(4, 32, radius=2.0, distance=1.0)


def test_silhouette_hull_by_hand():
    cams = cameras_from_spherical(torch.tensor([0.0, 90.0]), torch.zeros(2), torch.full((2,), 2.0),
                                  torch.full((2,), 40.0), 4)
    alpha = torch.zeros(2, 4, 4)
    alpha[0, 1, 1], alpha[0, 1, 2] = 0.2, 0.6  # view 0: two pixels of row 1
    alpha[1] = 1.0  # view 1 sees everything as solid
    # camera 0 sits on +x looking at the origin (image right = +y, image up = +z); this point, at
    # the origin's depth, projects one pixel above the image centre: (u, v) = (2, 1), the corner
    # shared by rows 0-1 and columns 1-2 (pixel centres are at +0.5)
    f = 0.5 * 4 / math.tan(math.radians(20))
    p = torch.tensor([[0.0, 0.0, 2.0 / f]])
    uv, _ = project_points(cams[0], p[None])
    assert uv[0, 0].tolist() == pytest.approx([2.0, 1.0], abs=1e-5)
    bilinear = 0.25 * (0.0 + 0.0 + 0.2 + 0.6)
    assert float(silhouette_hull(alpha, cams, p)) == pytest.approx(bilinear, abs=1e-6)  # min over the views
    assert float(silhouette_hull(alpha[1:], cams[1:], p)) == pytest.approx(1.0)
    # a point out of every frame gets no verdict (1)
    assert float(silhouette_hull(alpha, cams, torch.tensor([[0.0, 0.0, 50.0]]))) == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["cube", "cone"])
def test_hull_of_true_renders_is_the_object(name):
    """The visual hull of the world's own renders from 64 views is the object (both are convex)."""
    obj = make_object(name)
    cams = carving_cameras(64, 64, radius=0.75, distance=4.0)
    alpha = render_world(obj, cams, background=0.0, ss=2).alpha[..., 0]
    pts = _cell_centres(48, 1.0)
    hull = silhouette_hull(alpha, cams, pts).reshape(48, 48, 48) > 0.5
    assert iou(hull, occupancy_grid(obj, 48)) > 0.95
    # a single view's cone is far from the object: the views together do the work
    one = silhouette_hull(alpha[:1], cams[:1], pts).reshape(48, 48, 48) > 0.5
    assert iou(one, occupancy_grid(obj, 48)) < 0.8


class BallScene(nn.Module):
    """A ball of density of radius ``dense`` whose renders show a ball of radius ``seen`` with
    opacity ``opacity`` (so the density and the renders disagree on purpose)."""

    device = torch.device("cpu")

    def __init__(self, dense: float, seen: float, opacity: float = 1.0):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.dense, self.seen, self.opacity = dense, seen, opacity
        self.renders = 0

    def density(self, x):
        return (x.norm(dim=-1) < self.dense).float() * 50.0

    def albedo(self, x):
        return torch.full((x.shape[0], 3), 0.5)

    def surface_threshold(self, voxel_size):
        return 10.0

    def carved_threshold(self, voxel_size):
        return 10.0 / 16.0

    def render(self, cams, shading="albedo", generator=None, background=None, normals=True):
        self.renders += len(cams)
        o, d = camera_rays(cams)
        b = (o * d).sum(-1)
        hit = (b * b - (o * o).sum(-1) + self.seen**2 > 0) & (b < 0)
        alpha = hit[..., None].float() * self.opacity
        return RenderOutput(rgb=alpha.expand(*alpha.shape[:-1], 3), alpha=alpha, depth=alpha, normal=alpha.expand(*alpha.shape[:-1], 3))


def _radius(mesh):
    return float(np.linalg.norm(mesh.vertices, axis=-1).mean())


def test_export_carves_the_density_down_to_what_the_renders_show():
    scene = BallScene(dense=0.6, seen=0.4)
    carved = extract_mesh(scene, ExtractConfig(resolution=48, carve_views=32))
    assert scene.renders == 32
    assert _radius(carved) == pytest.approx(0.4, abs=0.02)
    density_only = extract_mesh(scene, ExtractConfig(resolution=48, carve_views=0))
    assert _radius(density_only) == pytest.approx(0.6, abs=0.03)
    # the renders cannot add what the density lacks
    assert _radius(extract_mesh(BallScene(dense=0.3, seen=0.5), ExtractConfig(resolution=48))) == pytest.approx(0.3, abs=0.03)


class SoftBallScene(BallScene):
    """Solid (50, above the threshold 10) inside ``core``, faint (2, below it) out to ``faint``, and
    opaque out to ``seen`` in its renders: a soft shell, as guidance leaves them."""

    def __init__(self, core: float, faint: float, seen: float):
        super().__init__(dense=core, seen=seen)
        self.faint = faint

    def density(self, x):
        r = x.norm(dim=-1)
        return torch.where(r < self.dense, 50.0, torch.where(r < self.faint, 2.0, 0.0))


def test_inside_the_hull_the_faint_density_is_the_object_too():
    scene = SoftBallScene(core=0.2, faint=0.4, seen=0.4)
    assert _radius(extract_mesh(scene, ExtractConfig(resolution=48, carve_views=16))) == pytest.approx(0.4, abs=0.02)
    # the scene's own level (an explicit threshold) keeps only the core; so does the density alone
    assert _radius(extract_mesh(scene, ExtractConfig(resolution=48, carve_views=16, threshold=10.0))) == pytest.approx(0.2, abs=0.02)
    assert _radius(extract_mesh(scene, ExtractConfig(resolution=48, carve_views=0))) == pytest.approx(0.2, abs=0.02)
    # the renders still cut the faint density they do not show
    wide = SoftBallScene(core=0.2, faint=0.6, seen=0.3)
    assert _radius(extract_mesh(wide, ExtractConfig(resolution=48, carve_views=16))) == pytest.approx(0.3, abs=0.02)


def test_a_scene_that_renders_transparent_keeps_its_density_mesh_with_a_warning():
    """A foggy text-to-3D scene (a prompt the teacher cannot draw) is nowhere half opaque in every
    view; the export warns and falls back to the density rather than writing nothing."""
    with pytest.warns(UserWarning, match="half opaque in all 16 carving renders"):
        mesh = extract_mesh(BallScene(dense=0.5, seen=0.5, opacity=0.4), ExtractConfig(resolution=32, carve_views=16))
    assert _radius(mesh) == pytest.approx(0.5, abs=0.04)


def test_carving_options_are_checked():
    with pytest.raises(ValueError, match="carve_views"):
        ExtractConfig(carve_views=-1)
    with pytest.raises(ValueError, match="carve_size"):
        ExtractConfig(carve_size=4)


def test_export_command_takes_the_carving_views(tmp_path, capsys):
    from ui3d.cli import main
    from ui3d.scene import GaussianConfig, GaussianScene, save_scene

    save_scene(GaussianScene(GaussianConfig(num_init=50)), tmp_path / "run" / "scene")
    assert main(["export", str(tmp_path / "run"), "--format", "glb", "--carve-views", "-1"]) == 2
    assert "carve_views: expected >= 0" in capsys.readouterr().err
    assert not (tmp_path / "run" / "export" / "mesh.glb").exists()
