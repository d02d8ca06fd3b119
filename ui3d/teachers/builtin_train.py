"""Training of the built-in teacher on a fixed, pre-rendered set of world renders.

A run folder holds::

    config.yaml              the resolved TeacherTrainConfig
    data.safetensors         the rendered training set (uint8 images + token ids), made once
    checkpoint.safetensors   model, EMA and optimiser state (metadata: step, elapsed seconds)
    teacher.safetensors      the EMA weights in the shipped format (:func:`save_teacher`)

The loss is the ε-prediction MSE at uniform integer timesteps with min-SNR-γ weighting (Hang et
al. 2023: w = min(SNR, γ)/SNR, which speeds up convergence a lot at this size), captions dropped to
the empty prompt with probability ``cond_dropout`` (classifier-free guidance). bf16 autocast on CPUs
with native bf16 (``autocast: null``, the default); fp32 elsewhere.
Checkpoints are atomic and written every ``checkpoint_minutes``, on Ctrl+C and at the end;
``resume=True`` continues from the run folder's checkpoint, with the same data order.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from ui3d.diffusion import VPSchedule
from ui3d.errors import UserError
from ui3d.io import read_safetensors
from ui3d.teachers.builtin import (
    KIND, BuiltinTeacherConfig, BuiltinTeacherModel, bf16_is_fast, camera_features, save_teacher,
)

__all__ = ["TeacherDataConfig", "TeacherTrainConfig", "render_dataset", "train_teacher", "denoising_loss"]

DATA_KIND = "ui3d.teacher_data"
CKPT_KIND = "ui3d.teacher_checkpoint"


@dataclass(frozen=True)
class TeacherDataConfig:
    n_images: int = 32768
    seed: int = 0
    ss: int = 2
    render_batch: int = 256
    background_kind: str = "plain"  # plain (white, v1) | muted (random muted backgrounds, v2)
    # > 0: every scene rendered twice, the second time with the camera turned by this many degrees,
    # and trained pair by pair (one timestep, noise and dropout per pair): what the two images share
    # cancels from the gradient of the turn (45°: half a period of a cube's cos 4·azimuth)
    turned_pairs_deg: float = 0.0

    def __post_init__(self) -> None:
        from ui3d.config import FieldValueError, check_ranges

        # upper bounds: the rendered set is held in memory (32768 images of 32² are 100 MB)
        check_ranges(self, n_images=(1, 1 << 20), ss=(1, 8), render_batch=(1, 4096), turned_pairs_deg=(0, 180))
        if self.turned_pairs_deg and (self.render_batch % 2 or self.n_images % self.render_batch):
            raise FieldValueError("render_batch", f"turned pairs need an even render_batch that divides n_images, "
                                                  f"got {self.render_batch} and {self.n_images}")


@dataclass(frozen=True)
class TeacherTrainConfig:
    model: BuiltinTeacherConfig = field(default_factory=BuiltinTeacherConfig)
    data: TeacherDataConfig = field(default_factory=TeacherDataConfig)
    steps: int = 4000
    max_minutes: float = 85.0  # stop (with a checkpoint) after this much training time
    batch_size: int = 64
    lr: float = 2e-3
    warmup_steps: int = 100
    lr_schedule: str = "constant"  # constant | cosine (from lr down to lr_min at `steps`: anneals a continuation)
    lr_min: float = 0.0
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    cond_dropout: float = 0.12
    min_snr_gamma: float = 5.0
    grad_clip: float = 1.0
    autocast: bool | None = None  # bf16 autocast; None = where the CPU has native bf16
    checkpoint_minutes: float = 3.0
    seed: int = 0
    threads: int = 1
    camera_dropout: float = 0.0  # camera-conditioned models: P(train with no camera), so text alone works
    init_from: str = ""  # a teacher .safetensors to start from (camera inputs it lacks start at zero)
    # where the steps run: cpu or cuda. The random draws stay on the CPU's generator either way, so a
    # run's data order, timesteps and noise do not depend on the device (nor does its checkpoint).
    device: str = "cpu"

    def __post_init__(self) -> None:
        from ui3d.config import FieldValueError, check_ranges

        check_ranges(self, camera_dropout=(0, 1), lr_min=(0, None))
        if self.device not in ("cpu", "cuda"):
            raise FieldValueError("device", f"expected cpu or cuda, got {self.device!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise FieldValueError("lr_schedule", f"expected constant or cosine, got {self.lr_schedule!r}")
        check_ranges(self, steps=(1, None), max_minutes=(0, None), batch_size=(1, 4096), lr=(0, None),
                     warmup_steps=(0, None), weight_decay=(0, None), ema_decay=(0, 1), cond_dropout=(0, 1),
                     min_snr_gamma=(0, None), grad_clip=(0, None), checkpoint_minutes=(0, None), threads=(0, 1024))


# --- data --------------------------------------------------------------------------------------

def pair_partners(n_images: int, render_batch: int) -> Tensor:
    """Index of each image's turned twin in a set rendered as turned pairs: every render batch holds
    its scenes, then the same scenes turned."""
    half = render_batch // 2
    i = torch.arange(n_images)
    return torch.where(i % render_batch < half, i + half, i - half)


def draw_batch(n_images: int, batch_size: int, generator: torch.Generator,
               partners: Tensor | None = None) -> tuple[Tensor, int, Callable[[Tensor], Tensor]]:
    """A training batch: its image indices, its number of independent draws, and ``shared``, which
    hands a value drawn per draw to every image of it. ``batch_size`` independent images, or with
    ``partners`` (:func:`pair_partners`) ``batch_size // 2`` whole pairs (the first members, then
    their twins), each pair one draw: one timestep, noise and dropout per pair."""
    if partners is None:
        return torch.randint(0, n_images, (batch_size,), generator=generator), batch_size, lambda values: values
    firsts = (partners > torch.arange(n_images)).nonzero().squeeze(1)
    idx = firsts[torch.randint(0, len(firsts), (batch_size // 2,), generator=generator)]
    return torch.cat([idx, partners[idx]]), batch_size // 2, lambda values: torch.cat([values, values])


def render_dataset(cfg: TeacherTrainConfig, path: Path, progress: bool = True) -> tuple[Tensor, list[str], Tensor]:
    """Render ``cfg.data.n_images`` captioned images once (uint8 [N, 3, r, r]) with their camera
    features [N, CAMERA_FEATURES] and save them (as turned pairs where ``turned_pairs_deg`` > 0:
    :func:`pair_partners`)."""
    from safetensors.torch import save_file

    from ui3d.io import atomic_path
    from ui3d.world.dataset import WorldDataset, WorldDatasetConfig

    if path.is_file():
        tensors, meta = read_safetensors(path, DATA_KIND)
        if "cameras" not in tensors:
            raise UserError(f"training set '{path}' has no cameras (made by an older version); delete it to re-render")
        return tensors["images"], json.loads(meta["captions"]), tensors["cameras"]
    d = cfg.data
    world = WorldDatasetConfig(resolution=cfg.model.resolution, ss=d.ss, background_kind=d.background_kind,
                               turned_pairs_deg=d.turned_pairs_deg)
    ds = WorldDataset(world, seed=d.seed, batch_size=d.render_batch)
    n_batches = math.ceil(d.n_images / d.render_batch)
    images, captions, cameras = [], [], []
    it = range(n_batches)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="rendering training set", unit="batch")
    for k in it:
        b = ds.batch(k)
        images.append(((b.images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8))
        captions.extend(b.captions)
        c = b.cameras
        cameras.append(camera_features(c.azimuth_deg, c.elevation_deg, c.distance, c.fovy_deg))
    imgs = torch.cat(images)[: d.n_images].contiguous()
    cams = torch.cat(cameras)[: d.n_images].contiguous()
    captions = captions[: d.n_images]
    with atomic_path(path) as tmp:
        save_file({"images": imgs, "cameras": cams}, str(tmp), metadata={"kind": DATA_KIND, "captions": json.dumps(captions)})
    return imgs, captions, cams


# --- loss --------------------------------------------------------------------------------------

def denoising_loss(
    model: BuiltinTeacherModel,
    schedule: VPSchedule,
    x0: Tensor,
    hidden: Tensor,
    generator: torch.Generator,
    min_snr_gamma: float | None = None,
    t: Tensor | None = None,
    camera: Tensor | None = None,
    eps: Tensor | None = None,
) -> Tensor:
    """Mean ε-MSE at random (or given) timesteps and noise; min-SNR-γ weighted when γ is given.

    The schedule lives on x0's device (the trainer puts it there once); drawn t and ε are CPU draws."""
    b = x0.shape[0]
    if t is None:
        t = torch.randint(0, schedule.num_train_timesteps, (b,), generator=generator)
    if eps is None:
        eps = torch.randn(x0.shape, generator=generator)
    a_bar = schedule.alphas_cumprod[t].view(-1, 1, 1, 1)
    x_t = a_bar.sqrt() * x0 + (1 - a_bar).sqrt() * eps
    pred = model(x_t, t, hidden, camera).float()
    per = (pred - eps).pow(2).mean(dim=(1, 2, 3))
    if min_snr_gamma:
        snr = (a_bar / (1 - a_bar)).view(-1)
        per = per * snr.clamp(max=min_snr_gamma) / snr
    return per.mean()


# --- checkpoints -------------------------------------------------------------------------------

def _save_checkpoint(path: Path, model, ema, opt, step: int, elapsed: float, gen: torch.Generator) -> None:
    from safetensors.torch import save_file

    from ui3d.io import atomic_path

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.state_dict().items()})
    names = [n for n, _ in model.named_parameters()]
    for i, p in enumerate(model.parameters()):
        st = opt.state.get(p)
        if st:
            tensors[f"opt.{names[i]}.exp_avg"] = st["exp_avg"].cpu().contiguous()
            tensors[f"opt.{names[i]}.exp_avg_sq"] = st["exp_avg_sq"].cpu().contiguous()
    tensors["rng"] = gen.get_state()
    meta = {"kind": CKPT_KIND, "step": str(step), "elapsed": repr(elapsed)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def _load_checkpoint(path: Path, model, ema, opt, gen: torch.Generator) -> tuple[int, float]:
    tensors, meta = read_safetensors(path, CKPT_KIND)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    step = int(meta["step"])
    for name, p in model.named_parameters():
        if f"opt.{name}.exp_avg" in tensors:
            opt.state[p] = {
                "step": torch.tensor(float(step)),
                "exp_avg": tensors[f"opt.{name}.exp_avg"].to(p.device),
                "exp_avg_sq": tensors[f"opt.{name}.exp_avg_sq"].to(p.device),
            }
    gen.set_state(tensors["rng"])
    return step, float(meta["elapsed"])


# --- training ----------------------------------------------------------------------------------

def _lr_at(cfg: TeacherTrainConfig, step: int) -> float:
    warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    if cfg.lr_schedule == "constant" or step < cfg.warmup_steps:
        return cfg.lr * warm
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.lr_min + (cfg.lr - cfg.lr_min) * 0.5 * (1 + math.cos(math.pi * progress))


def train_teacher(
    cfg: TeacherTrainConfig,
    out: str | Path,
    resume: bool = False,
    progress: bool = True,
    on_checkpoint: Callable[[int], None] | None = None,
) -> Path:
    """Train (or continue) a run in ``out``; returns the path of ``teacher.safetensors``."""
    from ui3d.config import dump_yaml

    out = Path(out)
    ckpt = out / "checkpoint.safetensors"
    if not resume and ckpt.exists():
        raise UserError(f"--out '{out}' already holds a run; pass --resume to continue it or choose a new folder")
    if resume and not ckpt.exists():
        raise UserError(f"--resume: no checkpoint in '{out}' (expected {ckpt.name})")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise UserError("device=cuda: torch sees no CUDA device (this torch build or machine has none)")
    out.mkdir(parents=True, exist_ok=True)
    dump_yaml(cfg, out / "config.yaml")
    old_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, out, ckpt, resume, progress, on_checkpoint)
    finally:
        torch.set_num_threads(old_threads)


def _train(cfg, out: Path, ckpt: Path, resume: bool, progress: bool, on_checkpoint) -> Path:
    images, captions, cameras = render_dataset(cfg, out / "data.safetensors", progress)
    torch.manual_seed(cfg.seed)
    model = BuiltinTeacherModel(cfg.model)
    if cfg.init_from and not resume:
        model.load_warm_start(read_safetensors(cfg.init_from, KIND)[0])
    dev = torch.device(cfg.device)
    model.to(dev)
    ids_all = model.tokenizer(captions)
    empty = model.tokenizer([""])
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = VPSchedule(VPSchedule.scaled_linear(cfg.model.num_train_timesteps).alphas_cumprod.to(dev))
    gen = torch.Generator().manual_seed(cfg.seed)
    step, elapsed = 0, 0.0
    if resume:
        step, elapsed = _load_checkpoint(ckpt, model, ema, opt, gen)
    n = images.shape[0]
    partners = pair_partners(n, cfg.data.render_batch) if cfg.data.turned_pairs_deg else None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc="training teacher", unit="step")
    last_ckpt = time.time()
    t_start = time.time() - elapsed
    use_bf16 = bf16_is_fast(dev.type) if cfg.autocast is None else cfg.autocast
    images, cameras = images.to(dev), cameras.to(dev)  # the uint8 set: 100 MB at 32768 images of 32²
    loss_avg = None
    try:
        while step < cfg.steps and (time.time() - t_start) < cfg.max_minutes * 60:
            idx, draws, shared = draw_batch(n, cfg.batch_size, gen, partners)
            # every draw from the CPU's generator, one per pair where the images come in turned pairs
            t = shared(torch.randint(0, cfg.model.num_train_timesteps, (draws,), generator=gen)).to(dev)
            eps = shared(torch.randn(draws, *images.shape[1:], generator=gen)).to(dev)
            ids = ids_all[idx].clone()
            drop = shared(torch.rand(draws, generator=gen) < cfg.cond_dropout)
            ids[drop] = empty
            idx = idx.to(dev)
            x0 = images[idx].float() / 127.5 - 1.0
            camera = None
            if cfg.model.camera_dim:  # dropped independently of the caption: text alone and camera alone both train
                keep = shared(torch.rand(draws, generator=gen) >= cfg.camera_dropout)
                camera = cameras[idx] * keep.to(dev)[:, None]
            for g in opt.param_groups:
                g["lr"] = _lr_at(cfg, step)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_bf16):
                hidden = model.text_encoder(ids.to(dev))
                loss = denoising_loss(model, schedule, x0, hidden, gen, cfg.min_snr_gamma, t=t, camera=camera, eps=eps)
            opt.zero_grad(set_to_none=True)
            if not torch.isfinite(loss):
                raise RuntimeError(f"non-finite loss at step {step}; lower lr (now {cfg.lr})")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            with torch.no_grad():
                d = min(cfg.ema_decay, (1 + step) / (10 + step))
                for pe, pm in zip(ema.parameters(), model.parameters()):
                    pe.lerp_(pm, 1 - d)
            step += 1
            loss_avg = loss.item() if loss_avg is None else 0.98 * loss_avg + 0.02 * loss.item()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_avg:.4f}", min=f"{(time.time() - t_start) / 60:.1f}")
            if time.time() - last_ckpt > cfg.checkpoint_minutes * 60:
                _save_checkpoint(ckpt, model, ema, opt, step, time.time() - t_start, gen)
                save_teacher(ema, out / "teacher.safetensors", _info(cfg, step, time.time() - t_start, n, loss_avg))
                last_ckpt = time.time()
                if on_checkpoint:
                    on_checkpoint(step)
    finally:  # Ctrl+C and errors end with a checkpoint too
        if bar is not None:
            bar.close()
        if step > 0:
            _save_checkpoint(ckpt, model, ema, opt, step, time.time() - t_start, gen)
            save_teacher(ema, out / "teacher.safetensors", _info(cfg, step, time.time() - t_start, n, loss_avg))
    return out / "teacher.safetensors"


def _info(cfg: TeacherTrainConfig, step: int, seconds: float, n: int, loss: float | None) -> dict:
    return {
        "steps": step,
        "train_seconds": round(seconds, 1),
        "batch_size": cfg.batch_size,
        "n_train_images": n,
        "data_seed": cfg.data.seed,
        "ema_decay": cfg.ema_decay,
        "final_loss_ema": None if loss is None else round(loss, 5),
        "threads": cfg.threads,
    }
