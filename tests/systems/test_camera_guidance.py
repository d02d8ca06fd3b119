"""The camera-guidance variants of systems/camera_guidance.py combine the teacher's branches as
their formulas say (the shipped, camera-conditioned built-in teacher)."""

import pytest
import torch

from systems.camera_guidance import uncond_without_camera, with_camera_scale
from ui3d.cameras import orbit_cameras
from ui3d.teachers.builtin import BuiltinTeacher
from ui3d.teachers.protocol import guided_eps


@pytest.fixture(scope="module")
def setup():
    teacher = BuiltinTeacher.load()
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(3, 3, teacher.resolution, teacher.resolution, generator=g)
    t = torch.tensor([300, 500, 700])
    cond = teacher.encode_prompts(["a red cube, front view", "a red cube, side view", "a red cube, back view"])
    uncond = teacher.encode_prompts([""])
    return teacher, x_t, t, cond, uncond, orbit_cameras(3, teacher.resolution, elevation_deg=20.0)


def test_camera_scale_adds_the_camera_direction_to_plain_cfg(setup):
    teacher, x_t, t, cond, uncond, cams = setup
    plain = guided_eps(teacher, x_t, t, cond, uncond, 4.0, cameras=cams)
    torch.testing.assert_close(with_camera_scale(teacher, x_t, t, cond, uncond, 4.0, cams, camera_scale=0.0), plain)
    camera_direction = teacher.predict_eps(x_t, t, cond, cams) - teacher.predict_eps(x_t, t, cond, None)
    assert camera_direction.abs().mean() > 1e-3  # the shipped teacher does read the camera
    got = with_camera_scale(teacher, x_t, t, cond, uncond, 4.0, cams, camera_scale=2.0)
    torch.testing.assert_close(got, plain + 2.0 * camera_direction, atol=1e-5, rtol=1e-4)


def test_the_unconditional_branch_without_camera(setup):
    teacher, x_t, t, cond, uncond, cams = setup
    conditional = teacher.predict_eps(x_t, t, cond, cams)
    torch.testing.assert_close(uncond_without_camera(teacher, x_t, t, cond, uncond, 1.0, cams), conditional)
    bare = teacher.predict_eps(x_t, t, uncond.expand(3, *uncond.shape[1:]), None)
    torch.testing.assert_close(uncond_without_camera(teacher, x_t, t, cond, uncond, 3.0, cams),
                               bare + 3.0 * (conditional - bare), atol=1e-5, rtol=1e-4)
