"""2-D mixture distillation (UNI_INSTRUCT.md §6.3): a one-step MLP generator against an exact
Gaussian-mixture teacher, with a learned fake score + discriminator or with exact oracles.

A thin orchestrator: the losses are the two turns of :class:`ui3d.guidance.Guidance` (the object
text-to-3D and image distillation call), at EDM noise levels; the teacher is the mixture's closed
form (:class:`ui3d.teachers.guided.MixtureTeacher`).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import torch

from systems.base import NonFiniteWatch, run_loop, write_csv
from ui3d.config import dump_yaml
from ui3d.diffusion import LogUniformSigma, Noise
from ui3d.divergence import NoiseTable
from ui3d.generator import MLPGenerator
from ui3d.guidance import EDMDenoisingWeight, GeneratorTurn, Guidance, GuidanceConfig
from ui3d.guidance.config import check_text_to_3d_fields_unset
from ui3d.guidance.levels import log_uniform_levels
from ui3d.guidance.fake import EmpiricalFakeScore, MLPFakeScore
from ui3d.io import write_json
from ui3d.metrics import energy_distance, mode_stats
from ui3d.metrics.plot2d import density_scatter_png
from ui3d.teachers.exact import GaussianMixture, load_mixture_json
from ui3d.teachers.guided import MixtureTeacher


@dataclass(frozen=True)
class Distill2DConfig:
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)  # its shared fields; text-to-3D's are refused
    oracle: Literal["exact", "learned"] = "learned"
    mixture: str = ""  # JSON file; empty = the 8-mode ring of §6.3
    steps: int = 2000
    seed: int = 0
    batch: int = 256
    latent_dim: int = 8
    hidden: int = 128
    generator_lr: float = 1e-3
    fake_lr: float = 2e-3
    adam_beta1: float = 0.0  # the paper's β = (0, 0.999)
    fake_steps: int = 1  # fake-score updates per generator update
    disc_steps: int = 0  # extra discriminator-only updates per step (8: JS covers 7 of 8 modes; docs/benchmarks.md)
    warmup_steps: int = 200  # fake-score-only steps before the first generator step (learned)
    sigma_min: float = 0.5  # at 0.05 some divergences need a setting each (README, "2-D distillation")
    sigma_max: float = 8.0
    # Coarse to fine (as DreamTime's high-noise-first schedule): the generator's σ_min falls
    # log-linearly from sigma_min_start to sigma_min over the first anneal_steps generator steps
    # (0 = off). The fake score and the ratio train on the whole range throughout.
    sigma_min_start: float = 0.0
    anneal_steps: int = 0
    oracle_samples: int = 256  # extra generator samples (beside the batch) behind the exact empirical q_t
    eval_samples: int = 10000
    max_bad_steps: int = 20  # non-finite losses in a row that stop the run
    grad_clip: float = 1.0  # max gradient norm of the generator (0 = off); measured: stops χ² runs diverging

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "latent_dim", "hidden", "fake_steps", "oracle_samples", "eval_samples"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")
        if (self.sigma_min_start > 0) != (self.anneal_steps > 0):
            raise ValueError("sigma_min_start and anneal_steps go together: set both (or neither), got "
                             f"{self.sigma_min_start} and {self.anneal_steps}")
        if self.anneal_steps and not self.sigma_min < self.sigma_min_start < self.sigma_max:
            raise ValueError(f"need sigma_min < sigma_min_start < sigma_max, got {self.sigma_min}, "
                             f"{self.sigma_min_start}, {self.sigma_max}")
        check_text_to_3d_fields_unset(self.guidance, "2-D distillation", {"t_min": "sigma_min", "t_max": "sigma_max"})
        from ui3d.config import check_ranges

        # upper bounds: memory grows with the batches, the evaluation's time with eval_samples²
        check_ranges(self, batch=(1, 1 << 16), oracle_samples=(1, 1 << 16), eval_samples=(1, 100_000),
                     latent_dim=(1, 1024), hidden=(1, 4096), fake_steps=(1, 100), disc_steps=(0, 100), warmup_steps=(0, None),
                     anneal_steps=(0, None), sigma_min_start=(0, None),
                     generator_lr=(0, None), fake_lr=(0, None), adam_beta1=(0, 1), grad_clip=(0, None))


def mixture_teacher(cfg: Distill2DConfig) -> GaussianMixture:
    """The config's mixture file (UserError names a bad one), or the 8-mode ring of §6.3."""
    return load_mixture_json(cfg.mixture) if cfg.mixture else GaussianMixture.ring()


def generator_sigmas(cfg: Distill2DConfig, step: int = 0) -> LogUniformSigma:
    """The generator turn's σ sampler at generator step ``step`` (σ_min annealed if the config says so)."""
    if cfg.anneal_steps == 0 or step >= cfg.anneal_steps:
        return LogUniformSigma(cfg.sigma_min, cfg.sigma_max)
    done = step / cfg.anneal_steps
    return LogUniformSigma(cfg.sigma_min_start ** (1 - done) * cfg.sigma_min ** done, cfg.sigma_max)


def sigma_levels(cfg: Distill2DConfig, step: int = 0) -> NoiseTable | None:
    """The generator turn's noise levels as mode ``by_parts`` needs them (None in other modes)."""
    if cfg.guidance.mode != "by_parts":
        return None
    sampler = generator_sigmas(cfg, step)
    return _log_uniform_table(sampler.sigma_min, sampler.sigma_max)


@functools.lru_cache(maxsize=4)
def _log_uniform_table(sigma_min: float, sigma_max: float) -> NoiseTable:
    # Asked for at every generator step; the range changes only while σ_min anneals.
    return log_uniform_levels(LogUniformSigma(sigma_min, sigma_max))


@dataclass(frozen=True)
class TrainHooks:
    """Entry points for measurements (systems.calibrate_ratio, systems.stein_2d); the defaults change nothing.

    ``generator_loss(guidance, x_g, noise)`` replaces :meth:`Guidance.generator_loss` (an experimental
    estimator); ``after_step(step, generator, fake)`` sees the models at the end of every loop step
    (warm-up included; ``fake`` is None for the exact oracle)."""

    generator_loss: Callable[[Guidance, torch.Tensor, Noise], GeneratorTurn] | None = None
    after_step: Callable[[int, MLPGenerator, MLPFakeScore | None], None] | None = None


def _step(opt: torch.optim.Optimizer, loss: torch.Tensor, clip: float = 0.0) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_([p for group in opt.param_groups for p in group["params"]], clip)
    opt.step()


def train(cfg: Distill2DConfig, teacher: GaussianMixture, progress: bool = True,
          hooks: TrainHooks = TrainHooks()) -> tuple[MLPGenerator, list[dict]]:
    """Train the generator; returns it and a per-step log (rows for losses.csv)."""
    torch.manual_seed(cfg.seed)  # module initialisation; all sampling below uses `g`
    g = torch.Generator().manual_seed(cfg.seed)
    learned = cfg.oracle == "learned"
    sigma_data = float(teacher.sample(4096, g).std())
    gen = MLPGenerator(cfg.latent_dim, teacher.dim, cfg.hidden)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.generator_lr, betas=(cfg.adam_beta1, 0.999))
    fake = MLPFakeScore(teacher.dim, cfg.hidden, sigma_data=sigma_data) if learned else None
    opt_f = torch.optim.Adam(fake.parameters(), lr=cfg.fake_lr, betas=(cfg.adam_beta1, 0.999)) if learned else None
    disc_steps = cfg.disc_steps if learned and cfg.guidance.uses_ratio else 0
    opt_d = torch.optim.Adam(fake.discriminator.parameters(), lr=cfg.fake_lr, betas=(cfg.adam_beta1, 0.999)) if disc_steps else None
    # Cosine decay sharpens the modes at the end; the fake score decays with the generator it tracks.
    schedules = [torch.optim.lr_scheduler.CosineAnnealingLR(o, cfg.steps, eta_min=0.05 * o.param_groups[0]["lr"])
                 for o in (opt_g, opt_f) if o is not None]
    teacher_score, denoising_weight = MixtureTeacher(teacher), EDMDenoisingWeight(sigma_data)
    guidance = Guidance(cfg.guidance, teacher_score, fake, denoising_weight) if learned else None
    sigmas = LogUniformSigma(cfg.sigma_min, cfg.sigma_max)  # the fake score's and the ratio's
    watch = NonFiniteWatch(cfg.max_bad_steps)
    warmup = cfg.warmup_steps if learned else 0
    state = LoopLog()

    def step_fn() -> dict:
        nonlocal guidance
        step = state.step
        row: dict = {"step": step}
        for _ in range(cfg.fake_steps if learned else 0):
            with torch.no_grad():
                x_g = gen(gen.sample_latent(cfg.batch, g))
            x_real = teacher.sample(cfg.batch, g) if cfg.guidance.uses_ratio else None
            noise = Noise.edm(sigmas.sample(cfg.batch, g), torch.randn(x_g.shape, generator=g))
            losses = guidance.fake_score_loss(x_g, noise, x_real=x_real)
            if watch.ok(losses.total, step, "fake-score"):
                _step(opt_f, losses.total)
            row["fake_loss"] = float(losses.denoising.loss.detach())
            row["disc_loss"] = float(losses.discriminator.loss.detach()) if losses.discriminator is not None else ""
        for _ in range(disc_steps):  # the ratio must keep up with the generator's newest samples
            with torch.no_grad():
                x_g = gen(gen.sample_latent(cfg.batch, g))
            noise = Noise.edm(sigmas.sample(cfg.batch, g), torch.randn(x_g.shape, generator=g))
            disc = guidance.discriminator_loss(x_g, noise, teacher.sample(cfg.batch, g))
            if watch.ok(disc, step, "discriminator"):
                _step(opt_d, disc)
        if step < warmup:
            return row
        x_g = gen(gen.sample_latent(cfg.batch, g))
        if not learned:  # q_t of the finite-sample measure: this batch plus more generator samples
            with torch.no_grad():
                extra = gen(gen.sample_latent(cfg.oracle_samples, g))
            guidance = Guidance(cfg.guidance, teacher_score, EmpiricalFakeScore(teacher, torch.cat([x_g.detach(), extra])),
                                denoising_weight)
        noise = Noise.edm(generator_sigmas(cfg, step - warmup).sample(cfg.batch, g), torch.randn(x_g.shape, generator=g))
        out = (hooks.generator_loss(guidance, x_g, noise) if hooks.generator_loss
               else guidance.generator_loss(x_g, noise, levels=sigma_levels(cfg, step - warmup)))
        if watch.ok(out.loss, step, "generator"):
            _step(opt_g, out.loss, cfg.grad_clip)
        row.update(generator_loss=float(out.loss.detach()), divergence=float(out.divergence.mean()), nonfinite=out.nonfinite)
        for schedule in schedules:
            schedule.step()
        return row

    after = (lambda row: hooks.after_step(row["step"], gen, fake)) if hooks.after_step is not None else None
    run_loop(state, warmup + cfg.steps, step_fn, after_step=after, progress=progress, desc="distill")
    return gen, state.log


@dataclass
class LoopLog:
    step: int = 0
    log: list = field(default_factory=list)


def evaluate(gen: MLPGenerator, teacher: GaussianMixture, n: int, seed: int) -> tuple[torch.Tensor, dict]:
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        samples = gen(gen.sample_latent(n, g))
    reference = teacher.sample(n, g)
    stats = mode_stats(samples, teacher.means, teacher.stds, teacher.weights)
    return samples, {
        "energy_distance": energy_distance(samples, reference),
        "modes_covered": stats.modes_covered,
        "n_modes": len(stats.mode_weights),
        "mode_weight_tv": stats.mode_weight_tv,
        "off_mode_fraction": stats.off_mode_fraction,
        "mode_weights": list(stats.mode_weights),
    }


def run(cfg: Distill2DConfig, teacher: GaussianMixture, out_dir: Path, progress: bool = True,
        hooks: TrainHooks = TrainHooks()) -> dict:
    """Train, evaluate and write config.yaml, metrics.json, samples.png and losses.csv into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    dump_yaml(cfg, out_dir / "config.yaml")
    start = time.perf_counter()
    gen, log = train(cfg, teacher, progress, hooks)
    wall = time.perf_counter() - start
    samples, metrics = evaluate(gen, teacher, cfg.eval_samples, cfg.seed)
    metrics.update(steps=cfg.steps, wall_seconds=round(wall, 2),
                   nonfinite_steps=sum(1 for r in log if r.get("nonfinite")),
                   divergence=cfg.guidance.divergence, mode=cfg.guidance.mode, oracle=cfg.oracle, seed=cfg.seed)
    write_csv(out_dir / "losses.csv", log)
    title = f"{cfg.guidance.divergence} / {cfg.guidance.mode} / {cfg.oracle}: {metrics['modes_covered']} modes"
    density_scatter_png(out_dir / "samples.png", samples, lambda x: teacher.to(dtype=x.dtype).log_prob(x), title=title)
    write_json(out_dir / "metrics.json", metrics)
    return metrics
