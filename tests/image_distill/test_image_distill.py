"""One-step image distillation: stop-gradients, the ratio estimator, resume, data parallel, bad input, CLI."""

import csv
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from systems.image_distill import (
    Batches, ImageDistillConfig, build, fake_turn, generator_turn, train,
)
from ui3d.config import load_config
from ui3d.divergence import ratio_from_logits
from ui3d.diffusion import Noise, NoiseLevel, snap_sigma
from ui3d.generator.onestep import OneStepGenerator
from ui3d.generator.sources import ImageFolderData
from ui3d.guidance import EDMDenoisingWeight, Guidance, GuidanceConfig, frozen
from ui3d.guidance.fake import DistillFakeScore
from ui3d.teachers.guided import GuidedNetwork
from ui3d.teachers.image import load_builtin, load_unet2d

from .conftest import save_pngs, save_tiny_unet2d

REPO = Path(__file__).resolve().parents[2]
DEBUG = REPO / "configs" / "debug" / "image_distill.yaml"


def _tiny_cfg(teacher: Path, data: Path, **kw) -> ImageDistillConfig:
    base = dict(teacher=str(teacher), data=str(data), batch=4, steps=3, warmup_images=4, generator_lr=1e-4,
                fake_lr=1e-4, ema_halflife_images=100, eval_images=8, checkpoint_every=1000)
    base.update(kw)
    return ImageDistillConfig(**base)


def _params(module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# --- the generator ------------------------------------------------------------------------------------

def test_generator_starts_as_the_teachers_one_step_denoiser(tiny_teacher):
    teacher = load_unet2d(str(tiny_teacher))
    gen = OneStepGenerator(teacher.network, teacher.schedule, "epsilon", 2.5, 3, 8)
    assert abs(gen.sigma_init - 2.5) < 0.02  # snapped to the DDPM grid
    z = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    t = teacher.schedule.timestep_for_edm_sigma(torch.tensor([gen.sigma_init] * 2))
    alpha, sigma = (v.view(-1, 1, 1, 1) for v in teacher.schedule.alpha_sigma(t))
    x_t = alpha * gen.sigma_init * z  # VP input of the EDM point x = σ_init·z
    with torch.no_grad():
        expected = (x_t - sigma * teacher.network(x_t, t)) / alpha
        assert torch.allclose(gen(z), expected, atol=1e-5)
    assert gen.network is not teacher.network  # a copy: training it leaves the teacher alone


# --- stop-gradients in the full system (built-in teacher, CFG, world renders as real data) -----------

@pytest.fixture(scope="module")
def builtin():
    return load_builtin()


def test_stop_gradients_in_both_turns(builtin):
    cfg = load_config(ImageDistillConfig, DEBUG, ["batch=2", "guidance.divergence=jeffreys", "gan_weight=0.01"])
    nets = build(cfg, builtin)
    batches = Batches(cfg, builtin, None)
    g = torch.Generator().manual_seed(0)
    teacher_params = list(nets.teacher.parameters())
    assert all(not p.requires_grad for p in teacher_params)

    loss, _ = fake_turn(cfg, nets, batches.draw(g, batches.fake_sigma, True), True)
    loss.backward()
    assert all(p.grad is None for p in nets.generator.parameters()), "the fake-score turn reached the generator"
    assert all(p.grad is None for p in teacher_params)
    assert nets.fake.discriminator_head.weight.grad.abs().sum() > 0  # the discriminator trains here
    assert sum(float(p.grad.abs().sum()) for p in nets.fake.network.unet.parameters() if p.grad is not None) > 0

    nets.fake.zero_grad(set_to_none=True)
    with frozen(nets.fake):
        loss, row = generator_turn(cfg, nets, batches.draw(g, batches.gen_sigma, True), builtin.uncond)
    assert all(p.requires_grad for p in nets.fake.network.unet.parameters())  # unfrozen again afterwards
    loss.backward()
    assert all(p.grad is None for p in nets.fake.parameters()), "the generator turn reached the fake score"
    assert all(p.grad is None for p in teacher_params)
    unet_grads = [p.grad for p in nets.generator.network.unet.parameters()]
    assert all(g_ is not None for g_ in unet_grads) and sum(float(g_.abs().sum()) for g_ in unet_grads) > 0
    assert all(p.grad is None for p in nets.generator.network.text_encoder.parameters())
    assert "adversarial_loss" in row


def test_training_leaves_the_teacher_untouched(builtin):
    cfg = load_config(ImageDistillConfig, DEBUG, ["batch=2", "warmup_images=2", "steps=1"])
    before = _params(builtin.network)
    nets, state = train(cfg, builtin, None, progress=False)
    assert state.iteration == cfg.iterations == 2
    assert all(torch.equal(v, builtin.network.state_dict()[k]) for k, v in before.items())
    moved = [k for k, v in nets.generator.network.unet.state_dict().items()
             if not torch.equal(v, builtin.network.unet.state_dict()[k])]
    assert moved, "the generator did not train"


# --- the ratio estimator ------------------------------------------------------------------------------

def test_discriminator_logit_converges_to_the_exact_log_ratio(tiny_teacher):
    """p = N(+m, s²I) (real) and q = N(−m, s²I) (generator): at noise σ, log p_σ/q_σ = 2m·Σx/(s² + σ²)."""
    torch.manual_seed(0)
    teacher = load_unet2d(str(tiny_teacher))
    fake = DistillFakeScore(teacher.network, teacher.schedule)
    guidance = Guidance(GuidanceConfig(), GuidedNetwork(teacher.network, teacher.schedule), fake, EDMDenoisingWeight(0.5))
    opt = torch.optim.Adam([p for p in fake.parameters() if p.requires_grad], lr=3e-3, betas=(0.0, 0.99))
    g = torch.Generator().manual_seed(1)
    m, s = 0.05, 0.5
    sigma = snap_sigma(teacher.schedule, torch.tensor([0.5]))
    var = s * s + float(sigma) ** 2

    def draw(n, sign):
        return sign * m + s * torch.randn(n, 3, 8, 8, generator=g)

    for _ in range(120):  # measured: correlation 0.96, mean error 0.3 of mean |log ratio|
        n = 32
        x_g, x_real = draw(n, -1), draw(n, +1)
        losses = guidance.fake_score_loss(x_g, Noise.edm(sigma.expand(n), torch.randn(n, 3, 8, 8, generator=g)), x_real=x_real)
        opt.zero_grad()
        losses.total.backward()
        opt.step()
    with torch.no_grad():
        x = torch.cat([draw(256, +1), draw(256, -1)]) + float(sigma) * torch.randn(512, 3, 8, 8, generator=g)
        exact = 2 * m * x.flatten(1).sum(1) / var
        logit = fake.predict(x, NoiseLevel.edm(sigma.expand(512))).logit
    corr = torch.corrcoef(torch.stack([logit, exact]))[0, 1]
    assert exact.std() > 1.5  # a ratio far from constant
    assert corr > 0.9, f"correlation {corr:.3f}"
    assert (logit - exact).abs().mean() < 0.5 * exact.abs().mean(), ((logit - exact).abs().mean(), exact.abs().mean())
    r = ratio_from_logits(logit, max_abs_logit=5.0)
    assert torch.allclose(r, logit.clamp(-5, 5).exp())


def test_generator_turn_returns_the_logit_with_its_graph_and_keeps_nothing(tiny_teacher):
    """SiDA's term reads the fake score's logit (with graph to x) and the teacher's x̂_0 from the
    turn's return values; the fake score keeps no state between calls."""
    torch.manual_seed(0)
    teacher = load_unet2d(str(tiny_teacher))
    fake = DistillFakeScore(teacher.network, teacher.schedule)
    with torch.no_grad():
        fake.discriminator_head.weight.normal_(0, 1.0)
    guided = GuidedNetwork(teacher.network, teacher.schedule)
    guidance = Guidance(GuidanceConfig(divergence="rkl", mode="static"), guided, fake, EDMDenoisingWeight(0.5))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 3, 8, 8, generator=g).requires_grad_(True)
    noise = Noise.edm(snap_sigma(teacher.schedule, torch.tensor([0.3, 1.0, 4.0])), torch.randn(3, 3, 8, 8, generator=g))
    plain = guidance.generator_loss(x, noise)
    assert plain.logit is None  # reverse KL needs no ratio: no logit asked for
    out = guidance.generator_loss(x, noise, adversarial=True)
    x_t = noise.apply(x.detach())
    with torch.no_grad():
        expected = fake.predict(x_t, noise.level)
        eps_p = guided.predict(x_t, noise.level)
    assert fake._bottleneck is None
    torch.testing.assert_close(out.logit.detach(), expected.logit)
    torch.testing.assert_close(out.teacher_x0, x_t - noise.level.sigma.view(-1, 1, 1, 1) * eps_p)
    (grad,) = torch.autograd.grad(out.logit.sum(), x)
    assert grad.abs().sum() > 0
    torch.testing.assert_close(out.loss, plain.loss)


# --- resume and data parallel -------------------------------------------------------------------------

def test_resume_continues_exactly(tiny_teacher, tiny_data, tmp_path):
    cfg = _tiny_cfg(tiny_teacher, tiny_data, steps=3, gan_weight=0.01, guidance=replace(ImageDistillConfig().guidance, divergence="js"))
    teacher, data = load_unet2d(str(tiny_teacher)), None
    data = ImageFolderData(tiny_data, teacher)
    straight, s_state = train(cfg, teacher, data, tmp_path / "a", progress=False)
    (tmp_path / "b").mkdir()
    train(cfg, teacher, data, tmp_path / "b", progress=False, stop_at=2)
    resumed, r_state = train(cfg, teacher, data, tmp_path / "b", resume=True, progress=False)
    assert r_state.iteration == s_state.iteration == 4
    for name in ("generator", "ema", "fake"):
        a, b = getattr(straight, name).state_dict(), getattr(resumed, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert [row.get("generator_total") for row in s_state.log] == [row.get("generator_total") for row in r_state.log]
    with (tmp_path / "b" / "losses.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 4


def _read_losses(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_two_processes_equal_one_with_the_doubled_batch(tiny_teacher, tiny_data, tmp_path):
    """torchrun, gloo, 2 CPU processes with 2 samples each vs 1 process with 4 (the same global draws).

    The ratio is not batch-normalised here (that normalisation is per process, as in the image code).
    Adam's eps is raised to 1e-4: some gradients are exactly zero in exact arithmetic (an attention
    key bias cannot change a softmax) and Adam with eps 1e-8 turns their rounding noise, which
    differs between one all-reduced sum and one local sum, into full-size steps of either sign."""
    overrides = ["batch=4", "eval_images=4", "guidance.self_normalize_ratio=false", "checkpoint_every=1000",
                 "adam_eps=1e-4"]
    flags = ["--divergence", "fkl", "--gan-weight", "0.01", "--steps", "3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "ui3d.cli", "distill", "--teacher", str(tiny_teacher), "--data", str(tiny_data), *flags,
                          "--config", str(DEBUG), "--out", str(tmp_path / "two"), *overrides],
                         capture_output=True, text=True, env=env, cwd=REPO)
    assert two.returncode == 0, two.stderr[-2000:]
    import json

    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["processes"] == 2
    cfg = load_config(ImageDistillConfig, DEBUG, [f"teacher={tiny_teacher}", f"data={tiny_data}", "guidance.divergence=fkl",
                                                  "gan_weight=0.01", "steps=3", *overrides])
    teacher = load_unet2d(str(tiny_teacher))
    one, state = train(cfg, teacher, ImageFolderData(tiny_data, teacher), progress=False)
    rows = _read_losses(tmp_path / "two" / "losses.csv")
    assert len(rows) == len(state.log) == 4
    for ra, rb in zip(state.log, rows):
        for key in ("fake_total", "generator_total"):
            if key in ra:
                assert ra[key] == pytest.approx(float(rb[key]), rel=1e-4, abs=1e-6), (key, ra, rb)
    cb = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=True)
    start = {"network." + k: v for k, v in teacher.network.state_dict().items()}
    for name in ("generator", "fake"):
        mine = getattr(one, name).state_dict()
        keys = [k for k in mine if k in start]
        moved = torch.cat([(mine[k] - start[k]).flatten() for k in keys])
        apart = torch.cat([(mine[k] - cb[name][k]).flatten() for k in keys])
        # Δ = D_p − D_q is a small difference of two near-equal network outputs, so float rounding
        # (batch 4 vs 2 + 2) is not bit-exact; the updates must agree to 1 %.
        assert moved.norm() > 0 and apart.norm() < 0.01 * moved.norm(), (name, float(apart.norm() / moved.norm()))


def test_non_finite_losses_skip_the_step_then_stop_the_run(tiny_teacher, tiny_data, tmp_path, monkeypatch):
    import systems.image_distill as system
    from systems.base import NonFiniteError

    cfg = _tiny_cfg(tiny_teacher, tiny_data, max_bad_steps=2)
    teacher = load_unet2d(str(tiny_teacher))
    real_turn = system.fake_turn

    def nan_turn(*args):
        loss, row = real_turn(*args)
        return loss * float("nan"), row

    monkeypatch.setattr(system, "fake_turn", nan_turn)
    before = _params(build(cfg, teacher).fake)
    with pytest.raises(NonFiniteError, match="2 non-finite fake-score losses in a row"):
        train(cfg, teacher, ImageFolderData(tiny_data, teacher), tmp_path, progress=False)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)  # kept on the way out
    assert saved["iteration"] == 1 and saved["bad_steps"] == 1
    assert all(torch.equal(saved["fake"][k], v) for k, v in before.items())  # the bad step was skipped


# --- the command line: outputs and bad input ----------------------------------------------------------

def _main(capsys, *args):
    from ui3d.cli import main

    code = main([str(a) for a in args])
    return code, capsys.readouterr()


def test_cli_distill_and_sample_unet2d(tiny_teacher, tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    code, io = _main(capsys, "distill", "--teacher", tiny_teacher, "--data", tiny_data, "--divergence", "js",
                     "--gan-weight", "0", "--config", DEBUG, "--out", out, "eval_images=8")
    assert code == 0, io.err
    assert "pytorch-fid" in io.out  # FID is not computed here, and it says why
    for name in ("config.yaml", "checkpoint.pt", "losses.csv", "metrics.json", "samples.png", "samples_init.png"):
        assert (out / name).is_file(), name
    cfg = load_config(ImageDistillConfig, out / "config.yaml")
    assert cfg.guidance.divergence == "js" and cfg.gan_weight == 0 and cfg.teacher == str(tiny_teacher)
    code, io = _main(capsys, "sample", out, "--n", "5", "--out", tmp_path / "s.png")
    assert code == 0, io.err
    from PIL import Image

    assert Image.open(tmp_path / "s.png").size == (5 * 8 * 2, 8 * 2)
    code, io = _main(capsys, "distill", "--resume", out, "--steps", "3")
    assert code == 0, io.err
    assert len(_read_losses(out / "losses.csv")) == 4  # 1 warm-up + 3 generator iterations


@pytest.mark.parametrize("case,needles", [
    ("resolution", ["16×16", "8×8"]),
    ("channels", ["1 channels", "3 channels"]),
    ("empty", ["holds no images"]),
    ("unreadable", ["cannot be read"]),
    ("architecture", ["UNet2DConditionModel", "UNet2DModel"]),
    ("weights", ["do not fit"]),
    ("builtin_with_data", ["world renders"]),
    ("no_data", ["needs --data"]),
])
def test_bad_input_exits_2_naming_both_sides(case, needles, tiny_teacher, tiny_data, tmp_path, capsys):
    teacher, data = tiny_teacher, tiny_data
    if case == "resolution":
        data = save_pngs(tmp_path / "big", size=16)
    elif case == "channels":
        data = save_pngs(tmp_path / "grey", mode="L")
    elif case == "empty":
        data = tmp_path / "empty"
        data.mkdir()
    elif case == "unreadable":
        data = save_pngs(tmp_path / "bad")
        (data / "broken.png").write_bytes(b"not a png")
    elif case == "architecture":
        teacher = tmp_path / "cond"
        teacher.mkdir()
        (teacher / "config.json").write_text('{"_class_name": "UNet2DConditionModel"}')
    elif case == "weights":  # a config whose widths the weights do not have
        import json
        import shutil

        teacher = Path(shutil.copytree(tiny_teacher, tmp_path / "mismatch"))
        cfg = json.loads((teacher / "config.json").read_text())
        cfg["block_out_channels"] = [32, 64]
        (teacher / "config.json").write_text(json.dumps(cfg))
    elif case == "builtin_with_data":
        teacher = "builtin"
    args = ["distill", "--teacher", teacher, "--config", DEBUG, "--out", tmp_path / "out"]
    if case != "no_data":
        args[3:3] = ["--data", data]
    code, io = _main(capsys, *args)
    assert code == 2, io.err
    assert len(io.err.strip().splitlines()) == 1 and "Traceback" not in io.err
    for needle in needles:
        assert needle in io.err, io.err


def test_sample_with_a_checkpoint_of_another_architecture(tiny_teacher, tiny_data, tmp_path, capsys):
    cfg = _tiny_cfg(tiny_teacher, tiny_data, steps=1)
    teacher = load_unet2d(str(tiny_teacher))
    from systems.image_distill import prepare_run

    prepare_run(cfg, teacher, tmp_path / "run", False)
    train(cfg, teacher, ImageFolderData(tiny_data, teacher), tmp_path / "run", progress=False)
    other = save_tiny_unet2d(tmp_path / "wide", widths=(16, 48))
    text = (tmp_path / "run" / "config.yaml").read_text().replace(str(tiny_teacher), str(other))
    (tmp_path / "run" / "config.yaml").write_text(text)
    code, io = _main(capsys, "sample", tmp_path / "run", "--n", "2")
    assert code == 2
    assert "checkpoint.pt" in io.err and str(other) in io.err and "[32" in io.err and "[48" in io.err, io.err


def test_image_flags_are_refused_for_gmm2d(tmp_path, capsys):
    code, io = _main(capsys, "distill", "--teacher", "gmm2d", "--gan-weight", "0.1", "--out", tmp_path)
    assert code == 2 and "--gan-weight" in io.err


def test_by_parts_trains_with_the_snapped_generator_levels(tiny_teacher, tiny_data, tmp_path):
    """Mode by_parts: the generator's SiD σ snapped to the teacher's grid is the table its weights come
    from, and three steps train the generator with finite losses."""
    from systems.image_distill import build

    guidance = replace(ImageDistillConfig().guidance, divergence="fkl", mode="by_parts")
    cfg = _tiny_cfg(tiny_teacher, tiny_data, steps=3, gan_weight=0.0, guidance=guidance)
    teacher = load_unet2d(str(tiny_teacher))
    levels = build(cfg, teacher).levels
    grid = teacher.schedule.edm_sigma(torch.arange(teacher.schedule.num_train_timesteps)).double()
    assert levels is not None and torch.isin(levels.sigma.float(), grid.float()).all()
    trained, state = train(cfg, teacher, ImageFolderData(tiny_data, teacher), tmp_path / "run", progress=False)
    start = build(cfg, teacher).generator.state_dict()
    assert any(not torch.equal(start[k], v) for k, v in trained.generator.state_dict().items())
    assert all(math.isfinite(float(row["generator_total"])) for row in state.log if "generator_total" in row)
