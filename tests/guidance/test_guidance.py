"""The one Guidance in EDM units (image and 2-D distillation) against closed forms, and the one
guidance config's per-system defaults and refusals."""

from dataclasses import replace

import pytest
import torch

from ui3d.config import ConfigError, load_config
from ui3d.diffusion import Noise
from ui3d.guidance import GUIDANCE_PRESETS, EDMDenoisingWeight, Guidance, GuidanceConfig
from ui3d.guidance.fake import EmpiricalFakeScore
from ui3d.teachers.exact import GaussianMixture
from ui3d.teachers.guided import MixtureTeacher

F64 = torch.float64


def _mixtures():
    teacher = GaussianMixture.ring().to(dtype=F64)
    samples = torch.randn(32, 2, dtype=F64, generator=torch.Generator().manual_seed(0)) * 2
    return teacher, EmpiricalFakeScore(teacher, samples)


def test_static_reverse_kl_at_edm_levels_is_diff_instruct():
    """UNI_INSTRUCT.md §5: static reverse KL with the mean_abs weight has the gradient
    ω·(x̂0_q − x̂0_p) per sample (batch mean), ω = 1/mean|x − x̂0_p|, x̂0 the exact denoisers."""
    teacher, fake = _mixtures()
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(6, 2, dtype=F64, generator=g) * 3).requires_grad_(True)
    sigma = torch.linspace(0.3, 4.0, 6, dtype=F64)
    noise = Noise.edm(sigma, torch.randn(6, 2, dtype=F64, generator=g))
    cfg = GuidanceConfig(divergence="rkl", mode="static", weighting="mean_abs")
    Guidance(cfg, MixtureTeacher(teacher), fake).generator_loss(x, noise).loss.backward()
    x_t = noise.apply(x.detach())
    d_p, d_q = teacher.denoise(x_t, sigma), fake.q.denoise(x_t, sigma)
    omega = 1 / (x.detach() - d_p).abs().mean(1, keepdim=True)
    expected = omega * (d_q - d_p) / 6
    torch.testing.assert_close(x.grad, expected, rtol=1e-9, atol=1e-12)
    assert expected.abs().max() > 1e-3


def test_the_ratio_reaches_the_loss_only_when_the_divergence_needs_it():
    """Forward KL static: per sample h(r) = r times the reverse-KL gradient, r the exact ratio
    self-normalised over the batch; ratio 'none' gives r = 1."""
    teacher, fake = _mixtures()
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(8, 2, dtype=F64, generator=g) * 3
    noise = Noise.edm(torch.full((8,), 1.5, dtype=F64), torch.randn(8, 2, dtype=F64, generator=g))
    grads = {}
    for name, cfg in {"rkl": GuidanceConfig(divergence="rkl", mode="static"),
                      "fkl": GuidanceConfig(divergence="fkl", mode="static", max_abs_logit=50.0),
                      "fkl_no_ratio": GuidanceConfig(divergence="fkl", mode="static", ratio="none")}.items():
        x = x0.clone().requires_grad_(True)
        Guidance(cfg, MixtureTeacher(teacher), fake).generator_loss(x, noise).loss.backward()
        grads[name] = x.grad
    log_r = fake.predict(noise.apply(x0), noise.level).logit
    r = (log_r.exp() / log_r.exp().mean())[:, None]
    assert r.max() / r.min() > 2  # the samples really are weighted differently
    torch.testing.assert_close(grads["fkl"], r * grads["rkl"], rtol=1e-9, atol=1e-14)
    torch.testing.assert_close(grads["fkl_no_ratio"], grads["rkl"], rtol=1e-12, atol=1e-14)


def test_fake_turn_weights_the_eps_error_by_edms_lambda():
    """EDM's DSM: λ(σ)·mean‖D(x_t) − x‖², here from ε̂ (x̂0 − x = −σ·(ε̂ − ε) at α = 1)."""
    teacher, fake = _mixtures()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 2, dtype=F64, generator=g)
    sigma = torch.linspace(0.2, 3.0, 5, dtype=F64)
    noise = Noise.edm(sigma, torch.randn(5, 2, dtype=F64, generator=g))
    cfg = GuidanceConfig()
    losses = Guidance(cfg, MixtureTeacher(teacher), fake, EDMDenoisingWeight(0.5)).fake_score_loss(x, noise)
    d_q = fake.q.denoise(noise.apply(x), sigma)
    lam = (sigma**2 + 0.25) / (sigma * 0.5) ** 2
    expected = (lam * (d_q - x).pow(2).mean(1)).mean()
    assert float(losses.denoising.loss) == pytest.approx(float(expected), rel=1e-6)  # the DSM runs in float32
    assert losses.discriminator is None


def test_each_system_keeps_its_guidance_defaults():
    from systems.distill_2d import Distill2DConfig
    from systems.image_distill import ImageDistillConfig
    from systems.text_to_3d import TextTo3DConfig

    assert ImageDistillConfig().guidance.weighting == Distill2DConfig().guidance.weighting == "mean_abs"
    assert TextTo3DConfig().guidance == replace(GUIDANCE_PRESETS["uni-instruct"], guidance_scale=2.5)  # builtin's CFG
    assert {p.weighting for p in GUIDANCE_PRESETS.values()} == {"sds"}
    assert (GUIDANCE_PRESETS["sds"].fake_score, GUIDANCE_PRESETS["sds"].guidance_scale) == ("noise", 100.0)


@pytest.mark.parametrize("system,preset,override,needle", [
    ("image", "configs/debug/image_distill.yaml", "guidance.guidance_scale=2", "set the top-level guidance_scale"),
    ("image", "configs/debug/image_distill.yaml", "guidance.lora_rank=8", "guidance.lora_rank is used by text-to-3D only"),
    ("2d", "configs/debug/distill_2d.yaml", "guidance.t_max=0.5", "set sigma_max instead"),
])
def test_distillation_refuses_text_to_3d_only_fields(system, preset, override, needle):
    """A field the system would ignore is an error at load, not a silent no-op."""
    from pathlib import Path

    from systems.distill_2d import Distill2DConfig
    from systems.image_distill import ImageDistillConfig

    cls = ImageDistillConfig if system == "image" else Distill2DConfig
    path = Path(__file__).resolve().parents[2] / preset
    load_config(cls, path)  # the preset itself loads
    with pytest.raises(ConfigError, match=needle):
        load_config(cls, path, [override])


def test_guidance_and_fake_score_must_agree():
    teacher, fake = _mixtures()
    with pytest.raises(ValueError, match="fake_score 'lora' needs a fake score"):
        Guidance(GuidanceConfig(), MixtureTeacher(teacher))
    with pytest.raises(ValueError, match="fake_score 'noise' takes no fake score"):
        Guidance(GuidanceConfig(fake_score="noise", ratio="none"), MixtureTeacher(teacher), fake)


def test_cfg_out_of_y_needs_a_teacher_with_cfg():
    teacher, fake = _mixtures()
    with pytest.raises(ValueError, match="cfg_in_y=false: this teacher has no CFG"):
        Guidance(GuidanceConfig(cfg_in_y=False), MixtureTeacher(teacher), fake)


def test_by_parts_is_static_with_each_sample_weighted_by_its_levels_multiplier():
    """Mode by_parts: per sample the static gradient times Λ'/π of the sample's level (mean_abs: times
    ω too), looked up in the sampler's table; without the table it refuses to guess."""
    from ui3d.diffusion import LogUniformSigma
    from ui3d.divergence import by_parts_multipliers, time_weight
    from ui3d.guidance.levels import log_uniform_levels

    teacher, fake = _mixtures()
    levels = log_uniform_levels(LogUniformSigma(0.05, 8.0))
    g = torch.Generator().manual_seed(4)
    x0 = torch.randn(6, 2, dtype=F64, generator=g) * 3
    sigma = levels.sigma[torch.tensor([5, 100, 400, 700, 990, 1020])]  # both ramps and the middle
    noise = Noise.edm(sigma, torch.randn(6, 2, dtype=F64, generator=g))
    grads = {}
    for mode in ("static", "by_parts"):
        x = x0.clone().requires_grad_(True)
        cfg = GuidanceConfig(divergence="fkl", mode=mode, weighting="none", max_abs_logit=50.0)
        Guidance(cfg, MixtureTeacher(teacher), fake).generator_loss(x, noise, levels=levels).loss.backward()
        grads[mode] = x.grad
    m = by_parts_multipliers(levels, time_weight("none", levels.alpha, levels.sigma))
    factor = m[torch.tensor([5, 100, 400, 700, 990, 1020])][:, None]
    torch.testing.assert_close(grads["by_parts"], factor * grads["static"], rtol=1e-9, atol=1e-14)
    assert (factor < 0).any() and (factor > 0).any()  # the top ramp raises the static divergence
    with pytest.raises(ValueError, match="levels"):
        Guidance(GuidanceConfig(mode="by_parts"), MixtureTeacher(teacher), fake).generator_loss(x0, noise)


def test_each_samplers_level_table():
    """The tables by_parts weights by: the 3D integer grid (equally likely), SiD's σ snapped to the
    teacher's grid (the lumps at both ends hold what snaps there), the 2-D log-uniform σ."""
    from ui3d.diffusion import LogUniformSigma, SiDSigma, UniformTimesteps, VPSchedule, snap_sigma
    from ui3d.guidance.levels import log_uniform_levels, snapped_sid_levels, vp_levels

    schedule = VPSchedule.scaled_linear()
    vp = vp_levels(schedule, UniformTimesteps(0.02, 0.98))
    assert vp.u.numel() == 960 and torch.allclose(vp.prob, torch.full((960,), 1 / 960, dtype=F64))
    assert vp_levels(schedule, UniformTimesteps(0.02, 0.98, t_max_final=0.5, anneal_end=10), step=10).u.numel() == 480
    sid = SiDSigma()
    table = snapped_sid_levels(sid, schedule)
    draws = snap_sigma(schedule, sid.sample(200_000, torch.Generator().manual_seed(0)))
    top, bottom = float((draws == draws.max()).double().mean()), float((draws == draws.min()).double().mean())
    assert float(table.prob[-1]) == pytest.approx(top, abs=0.003) and float(table.prob[0]) == pytest.approx(bottom, abs=0.003)
    assert float(table.prob.sum()) == pytest.approx(1.0)
    flat = log_uniform_levels(LogUniformSigma(0.05, 8.0), n=64)
    assert torch.allclose(flat.u.diff(), flat.u.diff()[:1].expand(63)) and float(flat.sigma[0]) > 0.05
