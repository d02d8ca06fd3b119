"""Sampling any :class:`~ui3d.teachers.protocol.Teacher`: deterministic DDIM with classifier-free
guidance (the built-in teacher's sample grids, the discriminator's real data in text-to-3D for every
teacher, the judge's evaluation of a teacher)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor

from ui3d.cameras import Cameras
from ui3d.diffusion import VPSchedule, eps_to_x0, x0_to_eps
from ui3d.teachers.protocol import Teacher, guided_eps

__all__ = ["ddim_timesteps", "sample_x", "sample_images", "cached_samples", "teacher_fingerprint"]


def ddim_timesteps(schedule: VPSchedule, steps: int) -> Tensor:
    """Descending integer timesteps (diffusers' DDIM "leading" spacing, shifted so t=T−1 starts)."""
    if steps < 1:
        raise ValueError(f"steps: expected >= 1, got {steps}")
    T = schedule.num_train_timesteps
    return torch.linspace(T - 1, 0, steps).round().long()


@torch.no_grad()
def sample_x(
    teacher: Teacher,
    prompts: Sequence[str],
    shape: tuple[int, ...],
    steps: int = 50,
    cfg: float = 4.0,
    generator: torch.Generator | None = None,
    cameras: Cameras | None = None,
    batch_size: int = 64,
    progress: bool = False,
    guide: Callable[..., Tensor] = guided_eps,
) -> Tensor:
    """Deterministic DDIM (η = 0) with classifier-free guidance in the teacher's own space: samples
    [B, *shape] (pixels in [−1, 1], or VAE latents). x̂_0 is clamped to [−1, 1] only where the
    teacher's samples live there (``clip_sample``). ``cameras`` (one per prompt) condition a teacher
    that takes them. ``guide`` (:func:`~ui3d.teachers.protocol.guided_eps`'s signature) combines the
    branches; experiments swap it."""
    prompts = list(prompts)
    if not prompts:
        raise ValueError("prompts: expected at least one prompt")
    gen = generator or torch.Generator().manual_seed(0)
    noise = torch.randn(len(prompts), *shape, generator=gen)
    cond_all = teacher.encode_prompts(prompts)
    uncond = teacher.encode_prompts([""])
    ts = ddim_timesteps(teacher.schedule, steps)
    a_bar = teacher.schedule.alphas_cumprod
    outs = []
    chunks = range(0, len(prompts), batch_size)
    if progress:
        from tqdm import tqdm

        chunks = tqdm(chunks, desc="sampling", unit="batch")
    for i in chunks:
        x = noise[i : i + batch_size]
        cond = cond_all[i : i + batch_size]
        cams = cameras[i : i + batch_size] if cameras is not None else None
        for k, t in enumerate(ts.tolist()):
            tt = torch.full((x.shape[0],), t, dtype=torch.long)
            eps = guide(teacher, x, tt, cond, uncond, cfg, cameras=cams)
            alpha, sigma = a_bar[t].sqrt(), (1 - a_bar[t]).sqrt()
            x0 = eps_to_x0(x, eps, alpha, sigma)
            if teacher.clip_sample:
                x0 = x0.clamp(-1.0, 1.0)
            eps = x0_to_eps(x, x0, alpha, sigma)
            ab_prev = a_bar[ts[k + 1]] if k + 1 < len(ts) else torch.tensor(1.0)
            x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
        outs.append(x)
    return torch.cat(outs)


def sample_images(
    teacher: Teacher,
    prompts: Sequence[str],
    steps: int = 50,
    cfg: float = 4.0,
    generator: torch.Generator | None = None,
    batch_size: int = 64,
    progress: bool = False,
    cameras: Cameras | None = None,
    guide: Callable[..., Tensor] = guided_eps,
) -> Tensor:
    """:func:`sample_x` of a pixel teacher at its resolution, decoded: images [B, 3, r, r] in [0, 1]."""
    r = teacher.resolution
    x = sample_x(teacher, prompts, (3, r, r), steps, cfg, generator, cameras, batch_size, progress, guide)
    return teacher.decode(x)


def teacher_fingerprint(teacher: Teacher, shape: tuple[int, ...]) -> str:
    """A digest of what the teacher predicts for a fixed input (the unconditional prompt, t = 500, a
    fixed camera where it takes one): different weights give a different key, whatever the spec says."""
    import hashlib

    from ui3d.cameras import orbit_cameras

    x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(0))
    cameras = orbit_cameras(1, max(shape[-1], 8), elevation_deg=15.0) if teacher.takes_camera else None
    with torch.no_grad():
        eps = teacher.predict_eps(x, torch.tensor([500]), teacher.encode_prompts([""]), cameras)
    return hashlib.sha256(eps.float().cpu().numpy().tobytes()).hexdigest()[:16]


def cached_samples(teacher: Teacher, prompts: Sequence[str], shape: tuple[int, ...], steps: int, cfg: float,
                   seed: int, cameras: Cameras | None = None, cache_dir: Path | None = None) -> Tensor:
    """:func:`sample_x` with its own generator (``seed``), read from or written to ``cache_dir`` (one
    safetensors file, keyed by the teacher's fingerprint and every argument); a cache that cannot be
    read or written is skipped."""
    import hashlib
    import json

    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    from ui3d.io import atomic_path

    path = None
    if cache_dir is not None:
        cams = None if cameras is None else torch.stack([cameras.azimuth_deg, cameras.elevation_deg,
                                                         cameras.distance, cameras.fovy_deg]).tolist()
        key = json.dumps([teacher_fingerprint(teacher, shape), list(prompts), list(shape), steps, cfg, seed, cams])
        path = Path(cache_dir) / f"samples-{hashlib.sha256(key.encode()).hexdigest()[:32]}.safetensors"
        try:
            return load_file(path)["x"]
        except (FileNotFoundError, SafetensorError, KeyError, OSError):
            pass
    x = sample_x(teacher, prompts, shape, steps, cfg, torch.Generator().manual_seed(seed), cameras).float().cpu()
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                save_file({"x": x.contiguous()}, str(tmp))
        except OSError:  # a read-only or full cache folder: run without the cache
            pass
    return x
