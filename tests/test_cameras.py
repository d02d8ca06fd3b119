import math

import pytest
import torch

from ui3d.cameras import (
    CameraRanges,
    Cameras,
    CameraSchedule,
    camera_rays,
    cameras_from_spherical,
    focal_length_px,
    look_at,
    orbit_cameras,
    project_points,
    ranges_at,
    sample_random_cameras,
    stratified_azimuths,
)


def _cam(az, el, d=2.0, fovy=50.0, size=(9, 11)):
    t = lambda v: torch.tensor([float(v)])  # noqa: E731
    return cameras_from_spherical(t(az), t(el), t(d), t(fovy), size)


def test_c2w_is_a_proper_rotation_for_random_cameras():
    cams = sample_random_cameras(64, 8, generator=torch.Generator().manual_seed(0))
    rot = cams.c2w[:, :3, :3]
    eye = torch.eye(3).expand(64, 3, 3)
    assert torch.allclose(rot.transpose(1, 2) @ rot, eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(64), atol=1e-5)
    assert torch.allclose(cams.c2w[:, 3], torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(64, 4))


@pytest.mark.parametrize(
    "az, el, expected",
    [(0, 0, (2, 0, 0)), (90, 0, (0, 2, 0)), (180, 0, (-2, 0, 0)), (0, 90, (0, 0, 2)), (45, 30, None)],
)
def test_camera_positions_follow_the_spherical_convention(az, el, expected):
    cam = _cam(az, el)
    if expected is None:
        a, e = math.radians(az), math.radians(el)
        expected = (2 * math.cos(e) * math.cos(a), 2 * math.cos(e) * math.sin(a), 2 * math.sin(e))
    assert torch.allclose(cam.position[0], torch.tensor(expected, dtype=torch.float32), atol=1e-5)


def test_camera_looks_at_the_origin_along_its_minus_z_with_world_up():
    cam = _cam(0, 0)
    # camera at +x looking along -x: its -z column is -x, its +y column is +z, its +x column is +y
    assert torch.allclose(cam.c2w[0, :3, 2], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)
    assert torch.allclose(cam.c2w[0, :3, 1], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)
    assert torch.allclose(cam.c2w[0, :3, 0], torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)


def test_centre_ray_points_at_the_origin_and_rays_are_unit():
    cams = sample_random_cameras(16, (9, 9), generator=torch.Generator().manual_seed(3))
    origins, dirs = camera_rays(cams)
    assert origins.shape == dirs.shape == (16, 9, 9, 3)
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(16, 9, 9), atol=1e-6)
    centre = dirs[:, 4, 4]
    expected = -cams.position / cams.position.norm(dim=-1, keepdim=True)
    assert torch.allclose(centre, expected, atol=1e-6)
    assert torch.allclose(origins[:, 0, 0], cams.position)


def test_row_zero_is_the_top_and_column_zero_the_left():
    cam = _cam(0, 0, size=(8, 8))  # at +x looking at -x: image-up = +z, image-right = +y
    _, dirs = camera_rays(cam)
    assert dirs[0, 0, 4, 2] > 0 > dirs[0, -1, 4, 2]
    assert dirs[0, 4, 0, 1] < 0 < dirs[0, 4, -1, 1]


def test_field_of_view_and_pixel_centres():
    cam = _cam(0, 0, fovy=60.0, size=(10, 10))
    f = focal_length_px(cam)
    assert f.item() == pytest.approx(5.0 / math.tan(math.radians(30.0)))
    _, dirs = camera_rays(cam)
    # the top row's centre is half a pixel below the top edge of the field of view
    top = dirs[0, 0, 0]  # camera at +x looks along -x, so -dirs[..., 0] is the forward component
    assert math.atan2(top[2], -top[0]) == pytest.approx(math.atan(4.5 / f.item()), abs=1e-6)
    assert math.atan2(-top[1], -top[0]) == pytest.approx(math.atan(4.5 / f.item()), abs=1e-6)


def test_project_points_inverts_camera_rays():
    cams = sample_random_cameras(4, (6, 7), generator=torch.Generator().manual_seed(1))
    origins, dirs = camera_rays(cams)
    pts = (origins + 1.3 * dirs).reshape(4, -1, 3)
    uv, z = project_points(cams, pts)
    cols, rows = torch.meshgrid(torch.arange(7) + 0.5, torch.arange(6) + 0.5, indexing="xy")
    expected = torch.stack([cols, rows], dim=-1).reshape(1, -1, 2).expand(4, -1, -1)
    assert torch.allclose(uv, expected, atol=1e-4)
    assert torch.all(z > 0)


def test_stratified_azimuths_cover_every_bin():
    n = 8
    for seed in range(50):
        az = stratified_azimuths(n, torch.Generator().manual_seed(seed))
        assert torch.all((az >= -180) & (az < 180))
        s = torch.sort(az).values
        gaps = torch.cat([s[1:] - s[:-1], (s[:1] + 360) - s[-1:]])
        # one sample per 45 deg stratum: no gap can reach two strata (iid samples would often)
        assert gaps.max() < 2 * 360 / n
    iid_violations = 0
    for seed in range(50):
        u = torch.rand(n, generator=torch.Generator().manual_seed(seed)) * 360
        s = torch.sort(u).values
        gaps = torch.cat([s[1:] - s[:-1], (s[:1] + 360) - s[-1:]])
        iid_violations += int(gaps.max() >= 2 * 360 / n)
    assert iid_violations > 10  # the check above discriminates


def test_random_cameras_respect_ranges_and_are_deterministic():
    ranges = CameraRanges(elevation_deg=(-5.0, 30.0), distance=(1.6, 1.9), fovy_deg=(45.0, 55.0))
    a = sample_random_cameras(128, 4, ranges, torch.Generator().manual_seed(7))
    b = sample_random_cameras(128, 4, ranges, torch.Generator().manual_seed(7))
    c = sample_random_cameras(128, 4, ranges, torch.Generator().manual_seed(8))
    assert torch.equal(a.c2w, b.c2w) and torch.equal(a.light_pos, b.light_pos)
    assert not torch.equal(a.c2w, c.c2w)
    assert a.elevation_deg.min() >= -5 and a.elevation_deg.max() <= 30
    assert a.distance.min() >= 1.6 and a.distance.max() <= 1.9
    assert a.fovy_deg.min() >= 45 and a.fovy_deg.max() <= 55
    assert torch.allclose(a.position.norm(dim=-1), a.distance, atol=1e-5)
    factor = a.light_pos.norm(dim=-1) / a.distance
    assert factor.min() >= 0.8 - 1e-5 and factor.max() <= 1.5 + 1e-5
    cos = torch.nn.functional.cosine_similarity(a.light_pos, a.position, dim=-1)
    assert cos.median() > 0.85  # the light sits near the camera


def test_orbit_cameras_start_at_the_front_and_are_evenly_spaced():
    cams = orbit_cameras(6, 16, elevation_deg=20.0, distance=1.8)
    assert torch.allclose(cams.azimuth_deg, torch.tensor([0.0, 60.0, 120.0, -180.0, -120.0, -60.0]))
    assert torch.allclose(cams.elevation_deg, torch.full((6,), 20.0))
    assert torch.allclose(cams.light_pos, cams.position)
    assert cams.position[0, 0] > 0 and abs(cams.position[0, 1]) < 1e-6


def test_cameras_indexing_and_devices():
    cams = sample_random_cameras(5, (4, 6), generator=torch.Generator().manual_seed(0))
    assert len(cams) == 5 and len(cams[1:3]) == 2 and len(cams[2]) == 1
    sub = cams[torch.tensor([4, 0])]
    assert torch.equal(sub.c2w[0], cams.c2w[4]) and (sub.height, sub.width) == (4, 6)
    assert isinstance(cams.to("cpu"), Cameras)
    assert cams.resized(8).height == 8 and cams.resized(8).width == 8


def test_look_at_handles_cameras_on_the_up_axis():
    c2w = look_at(torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, -2.0], [1e-4, 0.0, 2.0]]))
    rot = c2w[:, :3, :3]
    assert torch.isfinite(c2w).all()
    assert torch.allclose(rot.transpose(1, 2) @ rot, torch.eye(3).expand(3, 3, 3), atol=1e-5)
    assert torch.allclose(c2w[:, :3, 2], torch.tensor([[0.0, 0, 1], [0, 0, -1], [0, 0, 1]]), atol=1e-4)
    # straight down from above: image-up continues the azimuth-0 limit (-x)
    assert torch.allclose(c2w[0, :3, 1], c2w[2, :3, 1], atol=1e-3)


def test_ranges_schedule_and_errors():
    wide = CameraRanges(elevation_deg=(-10.0, 80.0))
    sched = CameraSchedule(((0, CameraRanges()), (100, wide)))
    assert ranges_at(0, sched) == CameraRanges() and ranges_at(99, sched) == CameraRanges()
    assert ranges_at(100, sched) == wide and ranges_at(10_000, sched) == wide
    with pytest.raises(ValueError, match="stages"):
        CameraSchedule(((5, CameraRanges()),))
    with pytest.raises(ValueError, match="elevation"):
        CameraRanges(elevation_deg=(30.0, 10.0))
    with pytest.raises(ValueError, match="generator"):
        sample_random_cameras(4, 8)
    with pytest.raises(ValueError, match="n:"):
        orbit_cameras(0, 8)
    with pytest.raises(ValueError, match="size"):
        orbit_cameras(2, 0)
