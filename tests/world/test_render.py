import math

import pytest
import torch

from ui3d.cameras import cameras_from_spherical, orbit_cameras
from ui3d.render import RenderOutput
from ui3d.world.objects import make_object
from ui3d.world.palette import PART_COLOURS
from ui3d.world.render import render_world

R = 0.4  # radius of the built-in sphere


def _cams(az, el=0.0, d=2.0, fovy=40.0, size=65):
    n = len(az)
    return cameras_from_spherical(
        torch.tensor(az, dtype=torch.float32),
        torch.full((n,), el),
        torch.full((n,), d),
        torch.full((n,), fovy),
        size,
    )


def _expected_radius_px(d, fovy, size):
    f = 0.5 * size / math.tan(math.radians(fovy) / 2)
    return f * math.tan(math.asin(R / d))


@pytest.mark.parametrize("ss", [1, 2])
def test_sphere_silhouette_radius_matches_the_analytic_value(ss):
    d, fovy, size = 1.7, 50.0, 64
    out = render_world(make_object("sphere"), _cams([0.0, 123.0], el=20.0, d=d, fovy=fovy, size=size), ss=ss)
    assert isinstance(out, RenderOutput) and out.rgb.shape == (2, size, size, 3)
    radius = torch.sqrt(out.alpha.sum(dim=(1, 2, 3)) / math.pi)
    expected = _expected_radius_px(d, fovy, size)
    assert torch.all((radius - expected).abs() < 1.0), (radius, expected)
    if ss == 2:
        a = out.alpha
        assert ((a > 0.05) & (a < 0.95)).sum() > 20  # soft edges


def test_sphere_depth_matches_the_distance_to_the_surface():
    d = 2.0
    cams = _cams([0.0, 77.0], el=10.0, d=d, size=65)
    out = render_world(make_object("sphere"), cams)
    assert out.depth[:, 32, 32, 0] == pytest.approx([d - R, d - R], abs=1e-3)
    # every covered pixel: the point at that depth lies on the sphere
    from ui3d.cameras import camera_rays

    o, dirs = camera_rays(cams)
    p = o + out.depth * dirs
    hit = out.alpha[..., 0] > 0
    err = (p[hit].norm(dim=-1) - R).abs()
    assert (err < 1e-3).float().mean() > 0.95
    # grazing rays at the silhouette count as hits within a pixel's footprint of the surface
    footprint = d * math.tan(math.radians(20.0)) / 32.5
    assert err.max() < footprint
    assert torch.all(out.depth[~hit] == 0)


def test_normals_are_unit_and_point_outwards():
    cams = _cams([30.0], el=25.0, size=48)
    out = render_world(make_object("sphere"), cams)
    from ui3d.cameras import camera_rays

    o, dirs = camera_rays(cams)
    hit = out.alpha[..., 0] > 0
    n = out.normal[hit]
    assert (n.norm(dim=-1) - 1).abs().max() < 1e-4
    p = (o + out.depth * dirs)[hit]
    assert torch.all((n * p).sum(-1) > 0)
    assert torch.nn.functional.cosine_similarity(n, p, dim=-1).min() > 0.999
    assert torch.all(out.normal[~hit] == 0)


def test_owl_front_and_back_differ_while_a_sphere_does_not():
    cams = _cams([0.0, 180.0], el=10.0, d=1.6, size=48)
    owl = render_world(make_object("owl"), cams)
    sphere = render_world(make_object("sphere"), cams)
    owl_diff = (owl.rgb[0] - owl.rgb[1]).abs().mean()
    sphere_diff = (sphere.rgb[0] - sphere.rgb[1]).abs().mean()
    assert sphere_diff < 1e-3
    assert owl_diff > 0.03
    # the eyes and the beak are on the owl's front (+x): only azimuth 0 shows their colours
    beak = torch.tensor(PART_COLOURS["beak"])
    eye = torch.tensor(PART_COLOURS["eye"])

    def count(img, rgb):  # pixels whose hue matches (shading scales brightness)
        c = img / img.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        return int(((c @ (rgb / rgb.norm())) > 0.995).logical_and(img.sum(-1) > 0.3).sum())

    front_eye, back_eye = count(owl.rgb[0] * owl.alpha[0], eye), count(owl.rgb[1] * owl.alpha[1], eye)
    front_beak, back_beak = count(owl.rgb[0], beak), count(owl.rgb[1], beak)
    assert front_beak > back_beak + 5
    assert front_eye > 20 and back_eye < front_eye / 4  # the eyes are on the front only


def test_image_orientation_row_zero_is_up_and_plus_y_is_right_from_the_front():
    cams = _cams([0.0], el=0.0, d=1.8, size=48)
    cone = render_world(make_object("cone"), cams).alpha[0, ..., 0]
    rows = cone.sum(dim=1)
    covered = torch.nonzero(rows > 0).squeeze(-1)
    top, bottom = covered[0] + 3, covered[-1] - 3
    assert rows[top] < rows[bottom]  # the apex (+z) is at the top of the image
    mug = render_world(make_object("mug"), cams).alpha[0, ..., 0]
    assert mug[:, 24:].sum() > mug[:, :24].sum() + 20  # the handle (+y) is on the right


def test_background_materials_and_batches_of_different_objects():
    cams = orbit_cameras(3, 24, elevation_deg=20.0, distance=1.8)
    objs = [make_object("cube", "red"), make_object("sphere", "red", "glossy"), make_object("sphere", "red")]
    out = render_world(objs, cams, background=(0.0, 0.5, 1.0))
    miss = out.alpha[..., 0] == 0
    assert torch.allclose(out.rgb[0][miss[0]], torch.tensor([0.0, 0.5, 1.0]))
    assert out.alpha[0].sum() != out.alpha[2].sum()  # cube and sphere differ
    assert out.rgb[1][~miss[1]].min(dim=-1).values.max() > 0.4  # a white glossy highlight
    assert out.rgb[2][~miss[2]].min(dim=-1).values.max() < 0.2  # matte red has none
    assert torch.all(out.rgb[2][~miss[2]][:, 0] > out.rgb[2][~miss[2]][:, 2])  # red stays red
    with pytest.raises(ValueError, match="objects"):
        render_world(objs[:2], cams)
    with pytest.raises(ValueError, match="ss"):
        render_world(objs, cams, ss=0)
