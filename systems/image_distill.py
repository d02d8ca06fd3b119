"""One-step image distillation (UNI_INSTRUCT.md §3): a generator initialised from the teacher's
network, a fake score (a full copy of the teacher) with its discriminator, and the divergence core.

A thin orchestrator: the losses are the two turns of :class:`ui3d.guidance.Guidance`, the same
object text-to-3D calls (here at EDM noise levels, α = 1); only the producer of x differs, the
one-step generator of ``ui3d.generator.onestep`` instead of a render. Each iteration is one
fake-score + discriminator turn (generator detached) and, after the warm-up, one generator turn
(teacher and fake-score parameters frozen) with SiDA's adversarial term, then the EMA of the
generator.

Data parallel: under ``torchrun`` (WORLD_SIZE > 1) every process draws the same global batch of
random numbers and keeps its shard, and gradients are averaged over processes with one all-reduce
after each backward (what DistributedDataParallel does; its wrapper is not used because the turns
reach the networks through several entry points). So N processes with batch B/N each follow the
same trajectory as one process with batch B, except that the ratio's batch self-normalisation is
per process, as in the image code.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn

from systems.base import NonFiniteWatch, format_postfix, load_checkpoint, run_loop, save_checkpoint, write_csv
from ui3d.config import dump_yaml
from ui3d.diffusion import LogNormalSigma, Noise, SiDSigma, snap_sigma
from ui3d.errors import UserError, user_input
from ui3d.divergence import NoiseTable, generator_adversarial_loss
from ui3d.divergence.weighting import adversarial_weight
from ui3d.generator.onestep import OneStepGenerator
from ui3d.generator.sources import ImageFolderData
from ui3d.guidance import EDMDenoisingWeight, Guidance, GuidanceConfig
from ui3d.guidance.config import check_text_to_3d_fields_unset
from ui3d.guidance.fake import DistillFakeScore
from ui3d.guidance.levels import snapped_sid_levels
from ui3d.teachers.guided import GuidedNetwork
from ui3d.teachers.image import ImageTeacher
from ui3d.teachers.protocol import Conditioning
from ui3d.world.dataset import render_captions


@dataclass(frozen=True)
class ImageDistillConfig:
    """Defaults are the image code's (§2 hyper-parameters); presets scale them to a machine."""

    teacher: str = "builtin"  # builtin | a UNet2DModel hub id or folder | a built-in teacher .safetensors
    data: str = ""  # image folder of real data (UNet2DModel teachers); builtin uses world renders
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)  # its shared fields; text-to-3D's are refused
    guidance_scale: float = 4.0  # teacher CFG (conditional teachers); 4 = the built-in teacher's eval protocol
    sigma_init: float = 2.5  # EDM units
    steps: int = 1000  # generator updates
    warmup_images: int = 100_000  # fake-score-only images before the first generator step
    batch: int = 256  # global batch, split over processes
    generator_lr: float = 1e-5
    fake_lr: float = 1e-5
    adam_beta1: float = 0.0
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    divergence_weight: float = 100.0  # lsg
    gan_weight: float = 0.01  # lsg_gan; 0 = no adversarial term
    dsm_weight: float = 1.0  # ls
    disc_weight: float = 1.0  # lsd
    fake_grad_clip: float = 1.0  # value clip of fake-score gradients when the GAN term is on; 0 = off
    t_max: float = 0.8  # generator σ: t ~ U[0, t_max] through the Karras map
    generator_sigma_min: float = 0.002  # σ at t = 0 of that map (the image code's 0.002)
    fake_p_mean: float = -1.2  # fake-score σ ~ LogNormal
    fake_p_std: float = 1.2
    sigma_data: float = 0.5
    ema_halflife_images: int = 500_000
    ema_rampup: float = 0.05
    seed: int = 0
    checkpoint_every: int = 100  # iterations
    max_bad_steps: int = 20
    eval_per_caption: int = 2  # built-in teacher: samples per object × colour caption (286 = the teacher card's count)
    eval_seed: int = 0
    eval_images: int = 1000  # image-folder teachers
    device: str = "cpu"
    threads: int = 1  # torch CPU threads (measured: one thread is fastest on a busy 2-core machine); 0 = torch's default

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "eval_per_caption", "eval_images", "checkpoint_every", "max_bad_steps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("generator_lr", "fake_lr", "sigma_init", "sigma_data", "t_max", "generator_sigma_min"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.warmup_images < 0 or self.gan_weight < 0 or self.ema_halflife_images < 0:
            raise ValueError("warmup_images, gan_weight and ema_halflife_images must be >= 0")
        check_text_to_3d_fields_unset(self.guidance, "image distillation",
                                      {"guidance_scale": "the top-level guidance_scale", "t_max": "the top-level t_max"})
        from ui3d.config import check_ranges

        # upper bounds: a typo must not exhaust the memory (batch) or run evaluation for hours
        check_ranges(self, batch=(1, 8192), eval_per_caption=(1, 100), eval_images=(1, 100_000), threads=(0, 1024),
                     guidance_scale=(0, None), divergence_weight=(0, None), dsm_weight=(0, None), disc_weight=(0, None),
                     fake_grad_clip=(0, None), fake_p_std=(0, None), ema_rampup=(0, None), adam_beta1=(0, 1),
                     adam_beta2=(0, 1), adam_eps=(0, None), t_max=(0, 1))

    @property
    def generator_sigma(self) -> SiDSigma:
        """The generator turn's noise levels (before snapping to the teacher's grid)."""
        return SiDSigma(t_max=self.t_max, sigma_min=self.generator_sigma_min)

    @property
    def warmup_iterations(self) -> int:
        return math.ceil(self.warmup_images / self.batch)

    @property
    def iterations(self) -> int:
        return self.warmup_iterations + self.steps


# --- processes -------------------------------------------------------------------------------------

def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env(device: str) -> None:
    """Join the process group torchrun describes (WORLD_SIZE > 1): nccl on CUDA, gloo on CPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")


def _reduce_gradients(params: list[nn.Parameter], loss: Tensor) -> tuple[Tensor, bool]:
    """Average gradients and the loss over processes; (mean loss, loss and gradients all finite)."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads] + [loss.detach().reshape(1).to(grads[0])])
    _, size = world()
    if size > 1:
        dist.all_reduce(flat)
        flat /= size
    finite = bool(torch.isfinite(flat).all())
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n
    return flat[-1], finite


# --- pieces ------------------------------------------------------------------------------------------

@dataclass
class Nets:
    guidance: Guidance  # holds the teacher (GuidedNetwork, CFG) and the fake score (DistillFakeScore)
    generator: OneStepGenerator
    ema: OneStepGenerator
    opt_g: torch.optim.Optimizer
    opt_f: torch.optim.Optimizer
    levels: NoiseTable | None = None  # the generator's noise levels, for mode by_parts

    @property
    def teacher(self) -> GuidedNetwork:
        return self.guidance.teacher

    @property
    def fake(self) -> DistillFakeScore:
        return self.guidance.fake


def build(cfg: ImageDistillConfig, teacher: ImageTeacher) -> Nets:
    torch.manual_seed(cfg.seed)  # the discriminator head's initialisation; all sampling uses a Generator
    dev = torch.device(cfg.device)
    args = (teacher.network, teacher.schedule, teacher.prediction)
    gen = OneStepGenerator(*args, cfg.sigma_init, teacher.channels, teacher.resolution).to(dev)
    ema = OneStepGenerator(*args, cfg.sigma_init, teacher.channels, teacher.resolution).to(dev).eval().requires_grad_(False)
    ema.load_state_dict(gen.state_dict())
    fake = DistillFakeScore(*args).to(dev)
    betas = (cfg.adam_beta1, cfg.adam_beta2)
    opt_g = torch.optim.Adam(gen.trainable_parameters(), lr=cfg.generator_lr, betas=betas, eps=cfg.adam_eps)
    opt_f = torch.optim.Adam([p for p in fake.parameters() if p.requires_grad], lr=cfg.fake_lr, betas=betas, eps=cfg.adam_eps)
    teacher_score = GuidedNetwork(teacher.network.to(dev), teacher.schedule, teacher.prediction, cfg.guidance_scale)
    guidance = Guidance(cfg.guidance, teacher_score, fake, EDMDenoisingWeight(cfg.sigma_data))
    levels = None
    if cfg.guidance.mode == "by_parts":
        levels = snapped_sid_levels(cfg.generator_sigma, teacher.schedule)
    return Nets(guidance, gen, ema, opt_g, opt_f, levels)


class Batches:
    """Global random draws, sliced to this process's shard; conditions and real images."""

    def __init__(self, cfg: ImageDistillConfig, teacher: ImageTeacher, data: ImageFolderData | None):
        rank, size = world()
        if cfg.batch % size:
            raise UserError(f"batch {cfg.batch} is not divisible by the {size} processes")
        per = cfg.batch // size
        self.shard = slice(rank * per, (rank + 1) * per)
        self.cfg, self.teacher, self.data = cfg, teacher, data
        self.dev = torch.device(cfg.device)
        self.shape = (teacher.channels, teacher.resolution, teacher.resolution)
        self.fake_sigma = LogNormalSigma(cfg.fake_p_mean, cfg.fake_p_std)
        self.gen_sigma = cfg.generator_sigma

    def draw(self, g: torch.Generator, sigma_sampler, with_real: bool) -> dict:
        b, s = self.cfg.batch, self.shard
        idx = torch.randint(len(self.teacher.captions) or len(self.data or []) or 1, (b,), generator=g)
        z = torch.randn(b, *self.shape, generator=g)
        sigma = snap_sigma(self.teacher.schedule, sigma_sampler.sample(b, g))
        noise = torch.randn(b, *self.shape, generator=g)
        camera_seed = int(torch.randint(2**62, (1,), generator=g))
        out = {"z": z[s], "sigma": sigma[s], "noise": noise[s], "cond": None, "real": None}
        if self.teacher.conditional:
            out["cond"] = self.teacher.embeddings[idx[s]]
        if with_real:
            if self.teacher.conditional:  # world renders of the same captions (built-in teacher)
                caps = [self.teacher.captions[i] for i in idx.tolist()]
                out["real"] = render_captions(caps, camera_seed, self.teacher.resolution, shard=s)
            else:
                out["real"] = self.data.sample(idx[s])
        return {k: (v.to(self.dev) if isinstance(v, Tensor) else v) for k, v in out.items()}


def _ema_beta(cfg: ImageDistillConfig, images_seen: int) -> float:
    """EDM's EMA: half-life min(ema_halflife_images, images_seen·rampup) in images."""
    halflife = cfg.ema_halflife_images
    if cfg.ema_rampup > 0:
        halflife = min(halflife, images_seen * cfg.ema_rampup)
    return 0.5 ** (cfg.batch / max(halflife, 1e-8))


@torch.no_grad()
def _update_ema(ema: nn.Module, gen: nn.Module, beta: float) -> None:
    for pe, pg in zip(ema.parameters(), gen.parameters()):
        pe.lerp_(pg.detach(), 1.0 - beta)


def fake_turn(cfg: ImageDistillConfig, nets: Nets, batch: dict, uses_disc: bool) -> tuple[Tensor, dict]:
    """§3 A: DSM on detached generator samples + the real-vs-fake BCE; loss for the fake only."""
    with torch.no_grad():
        x_g = nets.generator(batch["z"], batch["cond"])
    noise = Noise.edm(batch["sigma"], batch["noise"])
    losses = nets.guidance.fake_score_loss(x_g, noise, Conditioning(batch["cond"]), batch["real"] if uses_disc else None)
    loss = cfg.dsm_weight * losses.denoising.loss
    row = {"fake_loss": float(losses.denoising.loss.detach())}
    if losses.discriminator is not None:
        loss = loss + cfg.disc_weight * losses.discriminator.loss
        row["disc_loss"] = float(losses.discriminator.loss.detach())
    return loss, row


def generator_turn(cfg: ImageDistillConfig, nets: Nets, batch: dict, uncond: Tensor | None) -> tuple[Tensor, dict]:
    """§3 B: the divergence loss (+ the adversarial term) at x_t = x_g + σ·n; gradients reach θ only."""
    x_g = nets.generator(batch["z"], batch["cond"])
    noise = Noise.edm(batch["sigma"], batch["noise"])
    out = nets.guidance.generator_loss(x_g, noise, Conditioning(batch["cond"], uncond), adversarial=cfg.gan_weight > 0,
                                       levels=nets.levels)
    loss = cfg.divergence_weight * out.loss
    row = {"generator_loss": float(out.loss.detach()), "divergence": float(out.divergence.mean())}
    if cfg.gan_weight > 0:  # SiDA: BCE(logit(x_t^g), 1) on the turn's logit, with its graph (§1.5)
        adv = generator_adversarial_loss(out.logit, adversarial_weight(x_g, out.teacher_x0))
        loss = loss + cfg.gan_weight * adv.loss
        row["adversarial_loss"] = float(adv.loss.detach())
    return loss, row


# --- training -------------------------------------------------------------------------------------

@dataclass
class TrainState:
    iteration: int = 0
    log: list[dict] = field(default_factory=list)
    bad_steps: int = 0

    @property
    def step(self) -> int:  # the loop shell's name for the iteration
        return self.iteration

    @step.setter
    def step(self, value: int) -> None:
        self.iteration = value


def _any_process(requested: bool) -> bool:
    """A stop requested in any process stops all of them at the same iteration."""
    _, size = world()
    if size == 1:
        return requested
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    flag = torch.tensor([1.0 if requested else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def _checkpoint(nets: Nets, state: TrainState, g: torch.Generator) -> dict:
    return {
        "generator": nets.generator.state_dict(), "ema": nets.ema.state_dict(), "fake": nets.fake.state_dict(),
        "opt_g": nets.opt_g.state_dict(), "opt_f": nets.opt_f.state_dict(), "iteration": state.iteration,
        "rng": g.get_state(), "log": state.log, "bad_steps": state.bad_steps,
    }


def _load_state(module: nn.Module, state: dict, what: str, path: Path, teacher: ImageTeacher) -> None:
    """load_state_dict with a message naming the checkpoint and the teacher when shapes differ."""
    own = module.state_dict()
    for key, value in state.items():
        if key in own and own[key].shape != value.shape:
            raise UserError(f"checkpoint '{path}' ({what}) does not fit {teacher.describe()}: '{key}' is "
                            f"{list(value.shape)} in the checkpoint but {list(own[key].shape)} for the teacher")
    missing, unexpected = set(own) - set(state), set(state) - set(own)
    if missing or unexpected:
        key = sorted(missing or unexpected)[0]
        side = "missing from the checkpoint" if missing else "not in the teacher's network"
        raise UserError(f"checkpoint '{path}' ({what}) does not fit {teacher.describe()}: '{key}' is {side}")
    module.load_state_dict(state)


def resume_into(path: Path, nets: Nets, g: torch.Generator, teacher: ImageTeacher) -> TrainState:
    ck = load_checkpoint(path)
    for name in ("generator", "ema", "fake"):
        _load_state(getattr(nets, name), ck[name], name, path, teacher)
    nets.opt_g.load_state_dict(ck["opt_g"])
    nets.opt_f.load_state_dict(ck["opt_f"])
    g.set_state(ck["rng"])
    return TrainState(int(ck["iteration"]), list(ck["log"]), int(ck.get("bad_steps", 0)))


def _step(opt: torch.optim.Optimizer, params: list[nn.Parameter], loss: Tensor, watch: NonFiniteWatch,
          iteration: int, what: str, clip_value: float = 0.0) -> Tensor:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    mean_loss, finite = _reduce_gradients(params, loss)
    if watch.ok(mean_loss if finite else torch.tensor(float("nan")), iteration, what):
        if clip_value > 0:
            torch.nn.utils.clip_grad_value_(params, clip_value)
        opt.step()
    return mean_loss


def train(cfg: ImageDistillConfig, teacher: ImageTeacher, data: ImageFolderData | None, out_dir: Path | None = None,
          resume: bool = False, progress: bool = True, stop_at: int | None = None) -> tuple[Nets, TrainState]:
    """Run iterations up to ``cfg.iterations`` (or ``stop_at``); checkpoints into out_dir (rank 0)."""
    rank, _ = world()
    nets = build(cfg, teacher)
    g = torch.Generator().manual_seed(cfg.seed)
    state = resume_into(out_dir / "checkpoint.pt", nets, g, teacher) if resume else TrainState()
    batches = Batches(cfg, teacher, data)
    uses_disc = cfg.gan_weight > 0 or cfg.guidance.uses_ratio
    uncond = teacher.uncond.to(cfg.device) if teacher.uncond is not None else None
    gen_params, fake_params = nets.generator.trainable_parameters(), [p for p in nets.fake.parameters() if p.requires_grad]
    clip = cfg.fake_grad_clip if cfg.gan_weight > 0 else 0.0
    watch = NonFiniteWatch(cfg.max_bad_steps)
    end = min(cfg.iterations, stop_at if stop_at is not None else cfg.iterations)

    def step() -> dict:
        it = state.iteration
        row: dict = {"iteration": it}
        loss, info = fake_turn(cfg, nets, batches.draw(g, batches.fake_sigma, uses_disc), uses_disc)
        row.update(info, fake_total=float(_step(nets.opt_f, fake_params, loss, watch, it, "fake-score", clip)))
        if it >= cfg.warmup_iterations:
            loss, info = generator_turn(cfg, nets, batches.draw(g, batches.gen_sigma, cfg.gan_weight > 0), uncond)
            row.update(info, generator_total=float(_step(nets.opt_g, gen_params, loss, watch, it, "generator")))
            images = (it - cfg.warmup_iterations + 1) * cfg.batch
            _update_ema(nets.ema, nets.generator, _ema_beta(cfg, images))
        state.bad_steps = watch.total
        return row

    def save() -> None:
        save_checkpoint(out_dir / "checkpoint.pt", _checkpoint(nets, state, g))
        write_csv(out_dir / "losses.csv", state.log)

    run_loop(state, end, step, save if out_dir is not None and rank == 0 else None,
             checkpoint_every=cfg.checkpoint_every, agree=_any_process, progress=progress and rank == 0, desc="distill",
             postfix=lambda row: format_postfix(row, ("fake_loss", "generator_loss")))
    return nets, state


def prepare_run(cfg: ImageDistillConfig, teacher: ImageTeacher, out_dir: Path, resume: bool) -> None:
    """Check the run folder; write the resolved config (rank 0)."""
    if resume and not (out_dir / "checkpoint.pt").is_file():
        raise UserError(f"--resume: '{out_dir}' has no checkpoint.pt")
    if world()[0] == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        dump_yaml(cfg, out_dir / "config.yaml")


# --- a run: train, evaluate, write ------------------------------------------------------------------

def load_sources(cfg: ImageDistillConfig) -> tuple[ImageTeacher, ImageFolderData | None]:
    """The teacher and its real data, checked against each other before any training."""
    from ui3d.teachers.image import load_image_teacher

    teacher = load_image_teacher(cfg.teacher)
    if teacher.conditional:
        if cfg.data:
            raise UserError(f"--data: {teacher.describe()} uses world renders as real data; drop --data")
        return teacher, None
    if not cfg.data:
        raise UserError(f"{teacher.describe()} needs --data DIR: a folder of real images for the discriminator")
    return teacher, ImageFolderData(cfg.data, teacher)


def evaluate(cfg: ImageDistillConfig, generator: OneStepGenerator, teacher: ImageTeacher,
             data: ImageFolderData | None) -> tuple[dict, Tensor]:
    """world-FID + judge accuracy (built-in teacher) or FID (image folder), and samples in [−1, 1]."""
    from ui3d.generator.evaluate import evaluate_builtin, folder_fid, generate

    if teacher.conditional:
        from ui3d.metrics.judge import Judge

        return evaluate_builtin(generator, teacher.embeddings, Judge.load(), cfg.eval_per_caption, cfg.eval_seed)
    samples, seconds = generate(generator, cfg.eval_images, None, cfg.eval_seed)
    real = data.sample(torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.eval_seed))[: cfg.eval_images])
    fid, how = folder_fid(samples, real)
    if fid is None:
        print(f"fid: not computed: {how}")
    return {"n_samples": len(samples), "fid": fid, "fid_by": how, "sampling_seconds": round(seconds, 3),
            "samples_per_second": round(len(samples) / seconds, 1)}, samples


def _grid(samples: Tensor, path: Path, n: int = 64) -> None:
    from ui3d.images import save_grid

    pick = torch.linspace(0, len(samples) - 1, min(n, len(samples))).round().long()
    images = (samples[pick] + 1) / 2
    save_grid(images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images, path, columns=8, scale=2)


def run(cfg: ImageDistillConfig, out_dir: Path, resume: bool = False, progress: bool = True) -> dict | None:
    """Train (or continue), evaluate the EMA generator; writes config.yaml, checkpoint.pt, losses.csv,
    metrics.json, samples.png (and samples_init.png). Returns the metrics (rank 0) or None."""
    from ui3d.io import read_json, write_json

    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    init_from_env(cfg.device)
    teacher, data = load_sources(cfg)
    prepare_run(cfg, teacher, out_dir, resume)
    rank, size = world()
    initial = {}
    if not resume and rank == 0:
        probe = build(cfg, teacher).ema
        initial, samples = evaluate(cfg, probe, teacher, data)
        _grid(samples, out_dir / "samples_init.png")
        write_json(out_dir / "metrics_init.json", initial)
    elif resume and (out_dir / "metrics_init.json").is_file():
        initial = read_json(out_dir / "metrics_init.json")
    start = time.perf_counter()
    nets, state = train(cfg, teacher, data, out_dir, resume, progress)
    wall = time.perf_counter() - start
    if rank != 0:
        return None
    metrics, samples = evaluate(cfg, nets.ema, teacher, data)
    _grid(samples, out_dir / "samples.png")
    previous = read_json(out_dir / "metrics.json").get("train_seconds", 0.0) if resume and (out_dir / "metrics.json").is_file() else 0.0
    metrics.update(
        {f"init_{k}": v for k, v in initial.items() if k in ("world_fid", "object_accuracy", "colour_accuracy", "fid")},
        teacher=cfg.teacher, divergence=cfg.guidance.divergence, mode=cfg.guidance.mode, gan_weight=cfg.gan_weight,
        iterations=state.iteration, generator_steps=max(0, state.iteration - cfg.warmup_iterations),
        batch=cfg.batch, processes=size, train_seconds=round(previous + wall, 1), nonfinite_steps=state.bad_steps,
    )
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def load_generator(run_dir: Path) -> tuple[ImageDistillConfig, OneStepGenerator, ImageTeacher]:
    """The EMA generator of a run folder (config.yaml + checkpoint.pt), rebuilt on its teacher."""
    from ui3d.config import load_config
    from ui3d.teachers.image import load_image_teacher

    if not (run_dir / "config.yaml").is_file() or not (run_dir / "checkpoint.pt").is_file():
        raise UserError(f"'{run_dir}' is not a distillation run folder (needs config.yaml and checkpoint.pt)")
    cfg = load_config(ImageDistillConfig, run_dir / "config.yaml")
    teacher = load_image_teacher(cfg.teacher)
    gen = OneStepGenerator(teacher.network, teacher.schedule, teacher.prediction, cfg.sigma_init, teacher.channels,
                           teacher.resolution).eval().requires_grad_(False)
    ck = load_checkpoint(run_dir / "checkpoint.pt")
    if "ema" not in ck:
        raise UserError(f"checkpoint '{run_dir / 'checkpoint.pt'}' holds no generator (no 'ema' entry)")
    _load_state(gen, ck["ema"], "generator EMA", run_dir / "checkpoint.pt", teacher)
    return cfg, gen, teacher


def sample(run_dir: Path, n: int, seed: int, prompt: str | None, out: Path | None) -> tuple[Path, float]:
    """A grid of n one-step samples; (PNG path, samples per second)."""
    from ui3d.generator.evaluate import generate
    from ui3d.images import save_grid

    if n <= 0:
        raise UserError(f"--n must be positive, got {n}")
    cfg, gen, teacher = load_generator(run_dir)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    cond = None
    if teacher.conditional:
        if prompt:
            from ui3d.teachers.builtin import BuiltinTeacher

            with user_input():  # a prompt outside the teacher's vocabulary is the user's to fix
                BuiltinTeacher(teacher.network).check_prompts([prompt])
            with torch.no_grad():
                cond = teacher.network.encode_text([prompt] * n).float()
        else:
            cond = teacher.embeddings[torch.arange(n) % len(teacher.captions)]
    elif prompt:
        raise UserError(f"--prompt: {teacher.describe()} is unconditional")
    samples, seconds = generate(gen, n, cond, seed)
    path = out or run_dir / f"samples_n{n}_s{seed}.png"
    images = (samples + 1) / 2
    save_grid(images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images, path, columns=min(8, n))
    return path, n / seconds
