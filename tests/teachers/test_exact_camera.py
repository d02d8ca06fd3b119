"""The camera-matched oracle: ε̂ is exact for a noised true render at the given camera."""

import pytest
import torch

from ui3d.cameras import sample_random_cameras
from ui3d.teachers.exact import CameraMatchedWorldTeacher
from ui3d.world.captions import parse_prompt
from ui3d.world.dataset import dataset_cameras, render_pixels


def test_eps_of_a_noised_true_render_is_the_noise():
    teacher = CameraMatchedWorldTeacher(resolution=16, ss=1)
    prompts = ["a red cube, side view", "a green torus", ""]
    ids = teacher.encode_prompts(prompts)
    assert ids.flatten().tolist() == [0, 1, -1]
    g = torch.Generator().manual_seed(0)
    cams = sample_random_cameras(3, 16, dataset_cameras(), g)
    truth = ["a red cube", "a green torus", "a green torus"]
    x0 = torch.cat([render_pixels(parse_prompt(p).to_object(), cams[i : i + 1], 1) for i, p in enumerate(truth)])
    t = torch.tensor([100, 500, 20])  # "" at t = 20: the posterior is sure it is the torus
    alpha, sigma = (v.view(-1, 1, 1, 1) for v in teacher.schedule.alpha_sigma(t))
    eps = torch.randn(x0.shape, generator=g)
    got = teacher.predict_eps(alpha * x0 + sigma * eps, t, ids, cams)
    torch.testing.assert_close(got, eps, atol=1e-5, rtol=0)
    # the same noisy image seen from another camera is not explained by the render there
    other = sample_random_cameras(3, 16, dataset_cameras(), g)
    assert (teacher.predict_eps(alpha * x0 + sigma * eps, t, ids, other) - eps).abs().mean() > 0.05


def test_it_needs_the_camera():
    teacher = CameraMatchedWorldTeacher(resolution=16, ss=1)
    ids = teacher.encode_prompts(["a red cube"])
    with pytest.raises(ValueError, match="camera"):
        teacher.predict_eps(torch.zeros(1, 3, 16, 16), torch.tensor([10]), ids)


def test_the_guidance_hands_each_sample_its_camera_in_every_cfg_branch():
    from ui3d.diffusion import sample_vp_noise
    from ui3d.diffusion.timesteps import UniformTimesteps
    from ui3d.teachers.guided import GuidedTeacher
    from ui3d.teachers.protocol import Conditioning

    teacher = CameraMatchedWorldTeacher(resolution=16, ss=1)
    cond, uncond = teacher.encode_prompts(["a red cube", "a red cube"]), teacher.encode_prompts([""])
    g = torch.Generator().manual_seed(2)
    cams = sample_random_cameras(2, 16, dataset_cameras(), g)
    x0 = render_pixels(parse_prompt("a red cube").to_object(), cams, 1)
    noise = sample_vp_noise(teacher.schedule, UniformTimesteps(0.1, 0.9), x0, g, 0)
    guided = GuidedTeacher(teacher, scale=7.5)  # "" pools the one caption: CFG changes nothing here
    got = guided.predict(noise.apply(x0), noise.level, Conditioning(cond, uncond, cameras=cams))
    torch.testing.assert_close(got, noise.eps, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="camera"):
        guided.predict(noise.apply(x0), noise.level, Conditioning(cond, uncond))
