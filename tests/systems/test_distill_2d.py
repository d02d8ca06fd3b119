"""The 2-D distillation system and its CLI: outputs load back, bad input exits 2, turns keep their stop-gradients."""

import json
import subprocess
import sys

import pytest
import torch
from PIL import Image

from systems.base import NonFiniteError, NonFiniteWatch, run_folder, slug
from systems.distill_2d import Distill2DConfig, TrainHooks, evaluate, generator_sigmas, sigma_levels, train
from ui3d.config import load_config
from ui3d.generator import MLPGenerator
from ui3d.diffusion import Noise, NoiseLevel
from ui3d.guidance import EDMDenoisingWeight, Guidance, GuidanceConfig
from ui3d.guidance.fake import MLPFakeScore
from ui3d.teachers.exact import GaussianMixture
from ui3d.teachers.guided import MixtureTeacher

DEBUG = "configs/debug/distill_2d.yaml"


def _cli(*args):
    """The real console entry point in a fresh process."""
    return subprocess.run([sys.executable, "-m", "ui3d.cli", *args], capture_output=True, text=True)


def _main(capsys, *args):
    """The same entry point in-process (fast): (exit code, stderr)."""
    from ui3d.cli import main

    code = main(list(args))
    return code, capsys.readouterr().err


def test_cli_writes_outputs_that_load_back(tmp_path):
    out = tmp_path / "run"
    res = _cli("distill", "--teacher", "gmm2d", "--divergence", "js", "--oracle", "exact", "--seed", "3",
               "--config", DEBUG, "--out", str(out))
    assert res.returncode == 0, res.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("energy_distance", "modes_covered", "mode_weight_tv", "off_mode_fraction", "steps", "wall_seconds"):
        assert key in metrics
    assert metrics["steps"] == 20 and metrics["divergence"] == "js" and metrics["oracle"] == "exact"
    assert Image.open(out / "samples.png").size == (512, 512)
    cfg = load_config(Distill2DConfig, out / "config.yaml")
    assert cfg.guidance.divergence == "js" and cfg.seed == 3 and cfg.batch == 64
    assert (out / "losses.csv").read_text().count("\n") == 21  # header + one row per step (no warm-up for exact)


def _mixture(tmp_path, text):
    path = tmp_path / "mix.json"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    "make_args,needle",
    [
        (lambda p: ["--mixture", _mixture(p, "{not json")], "not JSON"),
        (lambda p: ["--mixture", _mixture(p, '{"means": [[0, 0]], "stds": [-0.1]}')], "stds must be >= 0"),
        (lambda p: ["--mixture", _mixture(p, '{"means": [[0, 0], [1, 1]], "stds": [0.1]}')], "2 means, 1 stds"),
        (lambda p: ["--mixture", _mixture(p, '{"means": [[0, 0]], "stds": [0.1], "weights": [-1]}')], "sum to a positive"),
        (lambda p: ["--mixture", str(p / "missing.json")], "cannot read mixture file"),
        (lambda p: ["--divergence", "kl"], "unknown divergence 'kl'"),
        (lambda p: ["--mode", "exactly"], "expected one of"),
        (lambda p: ["--steps", "0"], "steps must be a positive integer"),
        (lambda p: ["batch=-3"], "batch must be a positive integer"),
        (lambda p: ["stepz=3"], "did you mean 'steps'"),
        (lambda p: ["sigma_min_start=1.0"], "sigma_min_start and anneal_steps go together"),
        (lambda p: ["sigma_min_start=0.01", "anneal_steps=10", "sigma_min=0.05"], "need sigma_min < sigma_min_start"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, make_args, needle):
    out = tmp_path / "out"
    code, err = _main(capsys, "distill", "--teacher", "gmm2d", "--config", DEBUG, "--out", str(out), *make_args(tmp_path))
    assert code == 2
    assert needle in err
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert not out.exists()


def test_output_folder_that_is_a_file(tmp_path):
    out = tmp_path / "file"
    out.write_text("keep me")
    res = _cli("distill", "--config", DEBUG, "--out", str(out))  # a real process: exit code 2, one line
    assert res.returncode == 2 and "is a file" in res.stderr
    assert res.stderr.strip().count("\n") == 0
    assert out.read_text() == "keep me"


def test_generator_turn_sends_no_gradient_to_fake_score_and_fake_turn_none_to_generator():
    g = torch.Generator().manual_seed(0)
    teacher = GaussianMixture.ring()
    gen, fake = MLPGenerator(4, 2, 16), MLPFakeScore(2, 16, sigma_data=3.0)
    sigma, noise = torch.full((8,), 0.7), torch.randn(8, 2, generator=g)
    x_g = gen(gen.sample_latent(8, g))
    guidance = Guidance(GuidanceConfig(divergence="fkl"), MixtureTeacher(teacher), fake, EDMDenoisingWeight(3.0))
    out = guidance.generator_loss(x_g, Noise.edm(sigma, noise))
    out.loss.backward()
    assert all(p.grad is None for p in fake.parameters())
    assert all(p.requires_grad for p in fake.parameters())  # frozen only during the turn
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gen.parameters())
    gen.zero_grad(set_to_none=True)
    x_g = gen(gen.sample_latent(8, g))  # with graph: the fake turn must detach it itself
    losses = guidance.fake_score_loss(x_g, Noise.edm(sigma, noise), x_real=teacher.sample(8, g))
    losses.total.backward()
    assert all(p.grad is None for p in gen.parameters())
    assert all(p.grad is not None for p in fake.denoiser.parameters())
    assert all(p.grad is not None for p in fake.discriminator.parameters())


def test_discriminator_learns_the_exact_log_ratio_of_two_gaussians():
    """BCE optimum: logit = log(p_σ/q_σ); p = N(0, 1), q = N(1.5, 1) in 1-D at σ = 0.5."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    p = GaussianMixture.create([[0.0]], [1.0])
    q = GaussianMixture.create([[1.5]], [1.0])
    fake = MLPFakeScore(1, 32, depth=2, sigma_data=1.0)
    guidance = Guidance(GuidanceConfig(), MixtureTeacher(p), fake, EDMDenoisingWeight(1.0))
    opt = torch.optim.Adam(fake.parameters(), lr=3e-3)
    sigma = torch.full((512,), 0.5)
    for _ in range(400):
        noise = torch.randn(512, 1, generator=g)
        x_g, x_real = q.sample(512, g), p.sample(512, g)
        loss = guidance.fake_score_loss(x_g, Noise.edm(sigma, noise), x_real=x_real).discriminator.loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = torch.linspace(-1.5, 2.5, 21)[:, None]
    exact = p.log_prob(x, 0.5) - q.log_prob(x, 0.5)  # linear in x, slope −1.2
    learned = fake.predict(x, NoiseLevel.edm(torch.full((21,), 0.5))).logit.detach()
    assert (learned - exact).abs().max() < 0.35
    assert torch.corrcoef(torch.stack([learned, exact]))[0, 1] > 0.99


def test_a_short_run_learns():
    teacher = GaussianMixture.ring()
    cfg = Distill2DConfig(guidance=GuidanceConfig(divergence="rkl"), oracle="learned", steps=300, warmup_steps=50,
                          batch=128, hidden=64, generator_lr=3e-3, fake_lr=3e-3, eval_samples=2000)
    untrained = evaluate(MLPGenerator(cfg.latent_dim, 2, cfg.hidden), teacher, 2000, 0)[1]["energy_distance"]
    gen, _ = train(cfg, teacher, progress=False)
    trained = evaluate(gen, teacher, 2000, 0)[1]["energy_distance"]
    assert trained < 0.1 * untrained  # measured: 3.2 → 0.05


def test_non_finite_watch_stops_after_k_in_a_row():
    watch = NonFiniteWatch(limit=3)
    assert watch.ok(torch.tensor(1.0), 0, "g")
    assert not watch.ok(torch.tensor(float("nan")), 1, "g")
    assert watch.ok(torch.tensor(1.0), 2, "g")  # resets the streak
    assert not watch.ok(torch.tensor(float("inf")), 3, "g")
    assert not watch.ok(torch.tensor(float("nan")), 4, "g")
    with pytest.raises(NonFiniteError, match="3 non-finite g losses in a row at step 5"):
        watch.ok(torch.tensor(float("nan")), 5, "g")
    assert watch.total == 4


def test_every_preset_loads_strictly():
    from pathlib import Path

    configs = Path(__file__).resolve().parents[2] / "configs"  # the repository's, whatever the working folder
    presets = sorted((configs / "distill_2d").glob("*.yaml")) + [configs / "debug" / "distill_2d.yaml"]
    assert "ring.yaml" in {p.name for p in presets}
    for path in presets:
        load_config(Distill2DConfig, path)


def test_run_folder_names_are_sanitised():
    assert slug("A ceramic owl!  ../../etc") == "a-ceramic-owl-etc"
    assert slug("???") == "untitled"
    folder = run_folder("runs", "a red cube, side view", 7)
    assert folder.parent.name == "runs" and folder.name.startswith("a-red-cube-side-view-s7-")


def test_discriminator_loss_alone_is_the_fake_turns_bce_and_trains_only_the_discriminator():
    g = torch.Generator().manual_seed(0)
    teacher = GaussianMixture.ring()
    gen, fake = MLPGenerator(4, 2, 16), MLPFakeScore(2, 16, sigma_data=3.0)
    guidance = Guidance(GuidanceConfig(divergence="js"), MixtureTeacher(teacher), fake, EDMDenoisingWeight(3.0))
    noise = Noise.edm(torch.full((8,), 0.3), torch.randn(8, 2, generator=g))
    x_g, x_real = gen(gen.sample_latent(8, g)), teacher.sample(8, g)
    disc = guidance.discriminator_loss(x_g, noise, x_real)
    assert disc.item() == pytest.approx(guidance.fake_score_loss(x_g, noise, x_real=x_real).discriminator.loss.item())
    disc.backward()
    assert all(p.grad is None for p in gen.parameters()) and all(p.grad is None for p in fake.denoiser.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in fake.discriminator.parameters())


def test_disc_steps_let_the_discriminator_keep_up_with_the_generator():
    """Extra discriminator-only updates: after the same warm-up its BCE on fresh batches is lower."""
    from systems.distill_2d import TrainHooks

    teacher = GaussianMixture.ring()

    def held_out_bce(disc_steps: int) -> float:
        seen = {}
        hooks = TrainHooks(after_step=lambda step, gen, fake: seen.update(gen=gen, fake=fake))
        cfg = Distill2DConfig(guidance=GuidanceConfig(divergence="js"), oracle="learned", steps=1, warmup_steps=40,
                              batch=128, hidden=64, sigma_min=0.05, disc_steps=disc_steps, eval_samples=100)
        train(cfg, teacher, progress=False, hooks=hooks)
        gen, fake = seen["gen"], seen["fake"]
        guidance = Guidance(cfg.guidance, MixtureTeacher(teacher), fake, EDMDenoisingWeight(3.0))
        g = torch.Generator().manual_seed(7)
        with torch.no_grad():
            x_g = gen(gen.sample_latent(4096, g))
            noise = Noise.edm(torch.exp(torch.empty(4096).uniform_(-3.0, 0.0, generator=g)), torch.randn(4096, 2, generator=g))
            return guidance.discriminator_loss(x_g, noise, teacher.sample(4096, g)).item()

    assert held_out_bce(8) < held_out_bce(0) - 0.05


def test_sigma_min_falls_log_linearly_from_its_start_and_then_stays():
    cfg = Distill2DConfig(sigma_min=0.05, sigma_max=8.0, sigma_min_start=0.5, anneal_steps=100)
    assert [generator_sigmas(cfg, s).sigma_min for s in (0, 50, 100, 5000)] == pytest.approx([0.5, 0.5**0.5 * 0.05**0.5, 0.05, 0.05])
    assert generator_sigmas(cfg, 50).sigma_max == 8.0
    plain = Distill2DConfig(sigma_min=0.05)
    assert generator_sigmas(plain, 0) == generator_sigmas(plain, 10**6) == generator_sigmas(cfg, 100)
    by_parts = Distill2DConfig(guidance=GuidanceConfig(mode="by_parts"), sigma_min=0.05, sigma_min_start=0.5, anneal_steps=100)
    assert float(sigma_levels(by_parts, 0).sigma.min()) > 0.5 > float(sigma_levels(by_parts, 100).sigma.min()) > 0.05


def test_the_generator_sees_only_the_annealed_levels_and_the_fake_score_the_whole_range():
    """Through a real (short) run: the generator turn's σ follow the schedule, warm-up steps not counted."""
    cfg = Distill2DConfig(guidance=GuidanceConfig(divergence="fkl", mode="by_parts"), steps=4, warmup_steps=2, batch=64,
                          sigma_min=0.05, sigma_min_start=2.0, anneal_steps=4)
    seen = []

    def generator_loss(guidance, x_g, noise):
        seen.append(float(noise.level.sigma.min()))
        return guidance.generator_loss(x_g, noise, levels=sigma_levels(cfg, len(seen) - 1))
    train(cfg, GaussianMixture.ring(), progress=False, hooks=TrainHooks(generator_loss=generator_loss))
    floors = [generator_sigmas(cfg, s).sigma_min for s in range(4)]
    assert len(seen) == 4 and all(f <= s < f * 1.3 for f, s in zip(floors, seen))  # 64 draws: the floor's near
    assert seen[0] >= 2.0 and floors[-1] < 0.2
