"""Guidance (text-to-3D's presets) with a tiny Stable Diffusion of the real classes: SDS and VSD
gradients exactly, stop-gradients in both turns, and the LoRA fake score's trainable set."""

import pytest
import torch

from ui3d.diffusion import ALL_TIMESTEPS, per_sample, sample_vp_noise
from ui3d.guidance import Guidance, GuidanceConfig, guidance_preset
from ui3d.guidance.fake import LoRAFakeScore, camera_condition
from ui3d.teachers.protocol import Conditioning, guided_eps
from ui3d.teachers.stable_diffusion import StableDiffusionTeacher
from ui3d.teachers.tiny import save_tiny_stable_diffusion

B = 2
SD_CFG = 7.5  # the presets take the teacher's CFG; these teachers stand in for Stable Diffusion


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    folder = save_tiny_stable_diffusion(tmp_path_factory.mktemp("sd") / "tiny")
    return StableDiffusionTeacher.from_pretrained(folder, local_files_only=True)


@pytest.fixture(scope="module")
def prompts(teacher):
    emb = teacher.encode_prompts(["a red cube", ""])
    return emb[:1].expand(B, -1, -1), emb[1:]


def _camera():
    return camera_condition(torch.eye(4).expand(B, 4, 4) + 0.1)


def _perturbed_lora(teacher):
    fake = LoRAFakeScore(teacher.eps_network(), rank=4)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in fake.named_parameters():
            if "lora_B" in name or "camera_embedding.2" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return fake


def test_lora_starts_equal_to_the_teacher_and_trains_only_its_own_weights(teacher, prompts):
    fake = LoRAFakeScore(teacher.eps_network(), rank=4)
    x, t = torch.randn(B, 4, 8, 8), torch.tensor([100, 700])
    eps_q, logit = fake(x, t, prompts[0], _camera())
    torch.testing.assert_close(eps_q, teacher.predict_eps(x, t, prompts[0]), rtol=1e-5, atol=1e-6)
    assert logit.shape == (B,)
    names = [n for n, p in fake.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n or n.startswith(("camera_embedding", "discriminator_head")) for n in names)
    assert not any(p.requires_grad for p in teacher.unet.parameters())  # the copy, not the teacher, got LoRA


def _draw(guidance, x, seed):
    """The generator turn's noise at step 0, drawn as the 3D loop draws it."""
    schedule = guidance.teacher.teacher.schedule  # the Teacher inside the guided-teacher adapter
    return sample_vp_noise(schedule, guidance.cfg.timesteps(), x, torch.Generator().manual_seed(seed))


def _noise(guidance, x, seed):
    """(t, α, σ, ε) of that draw, α and σ broadcast against x."""
    noise = _draw(guidance, x, seed)
    return noise.level.t, per_sample(noise.level.alpha, x), per_sample(noise.level.sigma, x), noise.eps


def _generator_loss(guidance, x, prompts, seed, camera=None, negative=None):
    return guidance.generator_loss(x, _draw(guidance, x, seed), Conditioning(prompts[0], prompts[1], negative, camera))


def _expected_grad(guidance, teacher, x, prompts, eps_q_fn, seed):
    t, alpha, sigma, eps = _noise(guidance, x, seed)
    x_t = alpha * x.detach() + sigma * eps
    eps_p = guided_eps(teacher, x_t, t, prompts[0], prompts[1], guidance.cfg.guidance_scale)
    return (sigma**2 * (eps_p - eps_q_fn(x_t, t, eps)) / B).detach()


def test_sds_preset_is_dreamfusion_sds(teacher, prompts):
    guidance = Guidance.from_teacher(guidance_preset("sds"), teacher)
    x = torch.randn(B, 4, 8, 8, requires_grad=True)
    _generator_loss(guidance, x, prompts, 3).loss.backward()
    expected = _expected_grad(guidance, teacher, x, prompts, lambda x_t, t, eps: eps, 3)
    torch.testing.assert_close(x.grad, expected, rtol=1e-4, atol=1e-7)
    assert expected.abs().max() > 1e-4


def test_vsd_preset_is_prolificdreamer_vsd(teacher, prompts):
    fake = _perturbed_lora(teacher)
    guidance = Guidance.from_teacher(guidance_preset("vsd", guidance_scale=SD_CFG), teacher, fake)
    x = torch.randn(B, 4, 8, 8, requires_grad=True)
    cam = _camera()
    _generator_loss(guidance, x, prompts, 4, camera=cam).loss.backward()
    expected = _expected_grad(guidance, teacher, x, prompts, lambda x_t, t, eps: fake(x_t, t, prompts[0], cam)[0], 4)
    torch.testing.assert_close(x.grad, expected, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("mode", ["static", "exact"])
def test_uni_instruct_generator_turn_touches_neither_teacher_nor_fake(teacher, prompts, mode):
    fake = _perturbed_lora(teacher)
    guidance = Guidance.from_teacher(guidance_preset("uni-instruct", mode=mode, guidance_scale=SD_CFG), teacher, fake)
    x = torch.randn(B, 4, 8, 8, requires_grad=True)
    out = _generator_loss(guidance, x, prompts, 5, camera=_camera())
    out.loss.backward()
    assert out.nonfinite == 0 and x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in fake.parameters())
    assert all(p.grad is None for p in teacher.unet.parameters())
    assert fake.trainable_parameters()  # unfrozen again after the turn


def test_uni_instruct_3d_preset_is_vsd_weighted_by_h_of_the_ratio(teacher, prompts):
    """The 3D preset (static forward KL): per sample, h(r) times the VSD gradient, r from the
    discriminator head (clamped logit, batch self-normalised)."""
    from ui3d.divergence import get_divergence, ratio_from_logits

    fake = _perturbed_lora(teacher)
    with torch.no_grad():
        fake.discriminator_head.weight.normal_(0, 1.0, generator=torch.Generator().manual_seed(8))
    cam = _camera()
    ui = Guidance.from_teacher(guidance_preset("uni-instruct", guidance_scale=SD_CFG), teacher, fake)
    vsd = Guidance.from_teacher(guidance_preset("vsd", guidance_scale=SD_CFG), teacher, fake)
    grads = []
    for guidance in (ui, vsd):
        x = torch.randn(B, 4, 8, 8, generator=torch.Generator().manual_seed(9)).requires_grad_(True)
        _generator_loss(guidance, x, prompts, 4, camera=cam).loss.backward()
        grads.append(x.grad)
    t, alpha, sigma, eps = _noise(ui, x, 4)
    _, logit = fake(alpha * x.detach() + sigma * eps, t, prompts[0], cam)
    r = ratio_from_logits(logit, max_abs_logit=5.0, self_normalize=True)
    h = get_divergence("fkl").h(r).detach()
    assert (h.max() - h.min()) > 0.1  # the ratio really weights the samples differently
    torch.testing.assert_close(grads[0], h.reshape(B, 1, 1, 1) * grads[1], rtol=1e-4, atol=1e-8)


def _gradient(guidance, prompts, seed, cam):
    x = torch.randn(B, 4, 8, 8, generator=torch.Generator().manual_seed(9)).requires_grad_(True)
    _generator_loss(guidance, x, prompts, seed, camera=cam).loss.backward()
    return x.grad


def test_cfg_out_of_y_changes_nothing_in_static_mode(teacher, prompts):
    """cfg_in_y=false: y sees the conditional teacher and CFG's part of y is pushed statically, so the
    static preset's gradient is the guided teacher's, exactly."""
    fake, cam = _perturbed_lora(teacher), _camera()
    grads = [_gradient(Guidance.from_teacher(guidance_preset("uni-instruct", guidance_scale=SD_CFG, cfg_in_y=inside),
                                             teacher, fake), prompts, 4, cam) for inside in (True, False)]
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-8)
    assert grads[0].abs().max() > 1e-4


def test_cfg_out_of_y_leaves_only_the_cfg_push_when_the_fake_is_the_unguided_teacher(teacher, prompts):
    """A fake equal to the conditional teacher (a fresh LoRA) has y = 0 against it: with cfg_in_y=false
    the exact surrogate's SIM, Fisher and DI terms vanish and only CFG's static push is left, which is
    the static preset's gradient; with CFG inside y the exact mode's coupling terms act instead."""
    fake, cam = LoRAFakeScore(teacher.eps_network(), rank=4), _camera()

    def grad(mode, inside):
        cfg = guidance_preset("uni-instruct", mode=mode, guidance_scale=SD_CFG, cfg_in_y=inside, ratio="none")
        return _gradient(Guidance.from_teacher(cfg, teacher, fake), prompts, 6, cam)

    static, exact_out = grad("static", True), grad("exact", False)
    torch.testing.assert_close(exact_out, static, rtol=1e-4, atol=1e-8)
    assert static.abs().max() > 1e-4
    assert not torch.allclose(grad("exact", True), static, rtol=1e-2, atol=1e-6)


def test_fake_turn_trains_lora_camera_and_discriminator_not_the_render(teacher, prompts):
    fake = LoRAFakeScore(teacher.eps_network(), rank=4)
    guidance = Guidance.from_teacher(guidance_preset("uni-instruct", guidance_scale=SD_CFG), teacher, fake)
    x = torch.randn(B, 4, 8, 8, requires_grad=True)
    noise = sample_vp_noise(teacher.schedule, ALL_TIMESTEPS, x, torch.Generator().manual_seed(6))
    losses = guidance.fake_score_loss(x, noise, Conditioning(prompts[0], camera=_camera()), x_real=torch.randn(B, 4, 8, 8))
    assert losses.discriminator is not None
    losses.total.backward()
    assert x.grad is None
    grads = {n: p.grad for n, p in fake.named_parameters() if p.requires_grad}
    assert any("lora_A" in n and g is not None for n, g in grads.items())
    assert grads["discriminator_head.weight"] is not None and grads["camera_embedding.2.weight"] is not None


def test_configuration_errors():
    with pytest.raises(ValueError, match="needs fake_score 'lora'"):
        GuidanceConfig(fake_score="noise", ratio="discriminator")
    with pytest.raises(ValueError, match="unknown guidance 'vds'"):
        guidance_preset("vds")
    with pytest.raises(ValueError, match="t_min < t_max"):
        GuidanceConfig(t_min=0.9, t_max=0.5)


def test_camera_dropout_zeroes_a_fraction():
    cam = camera_condition(torch.eye(4).expand(1000, 4, 4), dropout=0.1, generator=torch.Generator().manual_seed(0))
    dropped = float((cam.abs().sum(1) == 0).float().mean())
    assert 0.07 < dropped < 0.13


def test_perp_neg_combine_hand_values():
    from ui3d.teachers.protocol import cfg_combine, perp_neg_combine

    u = torch.zeros(1, 2)
    c = torch.tensor([[1.0, 0.0]])
    # a negative along the positive direction changes nothing; an orthogonal one is removed with weight w
    torch.testing.assert_close(perp_neg_combine(u, c, torch.tensor([[3.0, 0.0]]), 5.0, 1.0), cfg_combine(u, c, 5.0))
    torch.testing.assert_close(perp_neg_combine(u, c, torch.tensor([[2.0, 1.0]]), 5.0, 0.5), torch.tensor([[5.0, -2.5]]))


def test_sds_with_perp_neg_uses_the_negative_view(teacher, prompts):
    """Perp-Neg through the full guidance: weight 0 is plain SDS; weight 1 is the hand-built
    Perp-Neg gradient with the negative embedding."""
    negative = prompts[1].expand(B, -1, -1) + 0.3
    x = torch.randn(B, 4, 8, 8)
    grads = {}
    for w in (0.0, 1.0):
        guidance = Guidance.from_teacher(guidance_preset("sds", perp_neg=True, perp_neg_weight=w), teacher)
        xg = x.clone().requires_grad_(True)
        _generator_loss(guidance, xg, prompts, 3, negative=negative).loss.backward()
        grads[w] = xg.grad
    plain = Guidance.from_teacher(guidance_preset("sds"), teacher)
    expected = _expected_grad(plain, teacher, x, prompts, lambda x_t, t, eps: eps, 3)
    tol = 1e-3 * float(expected.abs().max())  # CFG 100 amplifies float32 differences of a 3B vs 2B batch
    torch.testing.assert_close(grads[0.0], expected, rtol=0, atol=tol)
    t, alpha, sigma, eps = _noise(plain, x, 3)
    x_t = alpha * x + sigma * eps
    eps_p = guided_eps(teacher, x_t, t, prompts[0], prompts[1], 100.0, negative, 1.0)
    torch.testing.assert_close(grads[1.0], (sigma**2 * (eps_p - eps) / B).detach(), rtol=0, atol=tol)
    assert (grads[1.0] - grads[0.0]).abs().max() > 20 * tol
