"""The discriminator's real data for every teacher, and r = 1 exactly where there is none."""

from pathlib import Path

import pytest
import torch

from systems.text_to_3d import TextTo3DConfig, build_job, teacher_samples
from ui3d.config import load_config
from ui3d.diffusion import sample_vp_noise
from ui3d.teachers.protocol import Conditioning
from ui3d.teachers.tiny import save_tiny_stable_diffusion

DEBUG = Path(__file__).resolve().parents[2] / "configs" / "debug" / "text_to_3d.yaml"


def _gradient_with_a_random_head(job) -> torch.Tensor:
    """The generator loss's gradient on a fixed x (static mode: the loss's value is 0 by design),
    after scrambling the discriminator head (the ratio's source)."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in job.guidance.fake.discriminator_head.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)  # logits well inside the ±5 clamp
    x = (torch.rand(2, 3, 32, 32, generator=g) * 2 - 1).requires_grad_(True)
    cond, uncond = job.embeddings.for_cameras(torch.tensor([0.0, 90.0]), torch.tensor([10.0, 10.0]))
    noise = sample_vp_noise(job.teacher.schedule, job.cfg.guidance.timesteps(), x, torch.Generator().manual_seed(4), 0)
    job.guidance.generator_loss(x, noise, Conditioning(cond, uncond)).loss.backward()
    return x.grad


@pytest.fixture(scope="module")
def builtin():
    from ui3d.teachers.builtin import BuiltinTeacher

    return BuiltinTeacher.load()


def test_without_real_samples_the_ratio_is_exactly_one(builtin, tmp_path):
    """The bug this catches: an untrained discriminator head weighting the views."""
    cfg = load_config(TextTo3DConfig, DEBUG, ["prompt=a red cube", "real_samples_per_view=0"])
    job = build_job(cfg, builtin, tmp_path)
    assert job.x_real is None and job.cfg.guidance.uses_ratio and not job.guidance.uses_ratio
    reference = load_config(TextTo3DConfig, DEBUG, ["prompt=a red cube", "guidance.ratio=none"])
    without = _gradient_with_a_random_head(job)
    torch.testing.assert_close(without, _gradient_with_a_random_head(build_job(reference, builtin, tmp_path)))
    with_samples = build_job(load_config(TextTo3DConfig, DEBUG, ["prompt=a red cube"]), builtin, tmp_path)
    assert with_samples.guidance.uses_ratio  # and there the head does weight the views
    assert not torch.allclose(_gradient_with_a_random_head(with_samples), without, rtol=1e-2)


def test_stable_diffusion_gets_real_samples_as_latents_of_the_render_size(tmp_path):
    from ui3d.teachers.stable_diffusion import StableDiffusionTeacher

    teacher = StableDiffusionTeacher.from_pretrained(save_tiny_stable_diffusion(tmp_path / "sd"), local_files_only=True)
    cfg = load_config(TextTo3DConfig, DEBUG, ["prompt=a vase", "resolution=32", "real_samples_per_view=2",
                                              "real_sample_steps=2"])
    x = teacher_samples(teacher, cfg, tmp_path / "cache")
    latent = teacher.encode(torch.zeros(1, 3, 32, 32))
    assert x.shape == (4, 2, *latent.shape[1:]) and torch.isfinite(x).all()
    assert not torch.allclose(x[0], x[1])  # front and side prompts give different samples


def test_real_samples_are_cached_and_a_cached_draw_equals_a_fresh_one(builtin, tmp_path, monkeypatch):
    import ui3d.teachers.sampling as sampling

    cfg = load_config(TextTo3DConfig, DEBUG, ["prompt=a red cube", "real_samples_per_view=2", "real_sample_steps=3"])
    fresh = teacher_samples(builtin, cfg, tmp_path)
    assert len(list(tmp_path.glob("samples-*.safetensors"))) == 4  # one per view
    monkeypatch.setattr(sampling, "sample_x", lambda *a, **k: pytest.fail("sampled again despite the cache"))
    assert torch.equal(teacher_samples(builtin, cfg, tmp_path), fresh)
    other = load_config(TextTo3DConfig, DEBUG, ["prompt=a red cube", "real_samples_per_view=2", "real_sample_steps=3",
                                                "seed=1"])
    with pytest.raises(pytest.fail.Exception, match="despite the cache"):
        teacher_samples(builtin, other, tmp_path)  # another seed is another key


@pytest.mark.parametrize("teacher_camera", [True, False])
def test_teacher_camera_switches_the_camera_off_for_guidance_and_real_samples(builtin, tmp_path, monkeypatch,
                                                                              teacher_camera):
    """``teacher_camera=false`` (text and view prompt only) must reach every forward of the teacher:
    the guidance's and the discriminator's real samples'."""
    from systems.base import NonFiniteWatch
    from systems.text_to_3d import train_step

    assert builtin.takes_camera  # the shipped teacher is camera-conditioned: else this test shows nothing
    seen = []
    predict = builtin.predict_eps
    monkeypatch.setattr(builtin, "predict_eps", lambda x, t, e, camera=None: seen.append(camera) or predict(x, t, e, camera))
    cfg = load_config(TextTo3DConfig, DEBUG, ["prompt=a red cube", "real_samples_per_view=1", "real_sample_steps=2",
                                              f"teacher_camera={str(teacher_camera).lower()}"])
    job = build_job(cfg, builtin, None)  # no cache: a cache key's fingerprint reads the teacher at a fixed camera
    sampled = len(seen)
    assert sampled > 0 and job.x_real is not None
    train_step(job, NonFiniteWatch(limit=3))
    assert len(seen) > sampled  # the guidance ran the teacher
    assert all((c is not None) == teacher_camera for c in seen)


def test_the_camera_oracle_refuses_to_run_without_cameras():
    from ui3d.config import FieldValueError

    with pytest.raises(FieldValueError, match="needs the cameras"):
        TextTo3DConfig(teacher="exact-camera", teacher_camera=False)
