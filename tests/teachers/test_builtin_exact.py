"""The exact world teacher: closed-form ε of the Gaussian-smoothed renders of a caption."""

import torch

from ui3d.teachers.sampling import sample_images
from ui3d.teachers.exact import ExactWorldTeacher, world_renders_mixture
from ui3d.teachers.protocol import Teacher


def test_render_mixture_shape_colour_and_view_filter():
    mix = world_renders_mixture("a red cube", n=6, resolution=16, ss=1)
    assert mix.means.shape == (6, 3 * 16 * 16) and torch.allclose(mix.weights.sum(), torch.tensor(1.0))
    img = mix.means.reshape(6, 3, 16, 16)
    fg = (img < 0.9).any(1)  # not the white background
    r, g, b = (img[:, c][fg].mean() for c in range(3))
    assert r > g + 0.5 and r > b + 0.5
    # a back view of the mug: the renders differ from the front view's
    back = world_renders_mixture("a blue mug, back view", n=4, resolution=16, ss=1).means
    front = world_renders_mixture("a blue mug, front view", n=4, resolution=16, ss=1).means
    assert (back.mean(0) - front.mean(0)).abs().max() > 0.3


def test_exact_eps_recovers_the_noise_near_a_render():
    teacher = ExactWorldTeacher(n_renders=8, resolution=16, ss=1)
    assert isinstance(teacher, Teacher)
    cond = teacher.encode_prompts(["a green torus", "a yellow cone"])
    x0 = teacher.mixture("a green torus").means[:2].reshape(2, 3, 16, 16)
    gen = torch.Generator().manual_seed(0)
    eps = torch.randn(x0.shape, generator=gen)
    t = torch.tensor([100, 100])
    a, s = teacher.schedule.alpha_sigma(t)
    x_t = a.view(-1, 1, 1, 1) * x0 + s.view(-1, 1, 1, 1) * eps
    right = teacher.predict_eps(x_t, t, cond[:1].expand(2, 1))
    wrong = teacher.predict_eps(x_t, t, cond[1:].expand(2, 1))
    assert (right - eps).pow(2).mean() < 1e-3  # the posterior sits on the true render
    assert (wrong - eps).pow(2).mean() > 0.05  # the other caption's renders explain it badly


def test_ddim_with_the_exact_teacher_lands_on_a_render():
    teacher = ExactWorldTeacher(n_renders=6, resolution=16, ss=1)
    out = sample_images(teacher, ["a blue sphere"] * 2, steps=12, cfg=1.0, generator=torch.Generator().manual_seed(1))
    renders = teacher.decode(teacher.mixture("a blue sphere").means.reshape(-1, 3, 16, 16))
    dist = (out[:, None] - renders[None]).pow(2).mean(dim=(2, 3, 4)).min(1).values
    assert out.shape == (2, 3, 16, 16) and (dist < 2e-3).all()
