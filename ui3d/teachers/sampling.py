"""Sampling any pixel-space :class:`~ui3d.teachers.protocol.Teacher`: deterministic DDIM with
classifier-free guidance (the built-in teacher's sample grids, the discriminator's real data in
text-to-3D, the judge's evaluation of a teacher)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ui3d.diffusion import VPSchedule, eps_to_x0, x0_to_eps
from ui3d.teachers.protocol import Teacher, guided_eps

__all__ = ["ddim_timesteps", "sample_images"]


def ddim_timesteps(schedule: VPSchedule, steps: int) -> Tensor:
    """Descending integer timesteps (diffusers' DDIM "leading" spacing, shifted so t=T−1 starts)."""
    if steps < 1:
        raise ValueError(f"steps: expected >= 1, got {steps}")
    T = schedule.num_train_timesteps
    return torch.linspace(T - 1, 0, steps).round().long()


@torch.no_grad()
def sample_images(
    teacher: Teacher,
    prompts: Sequence[str],
    steps: int = 50,
    cfg: float = 4.0,
    generator: torch.Generator | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> Tensor:
    """Deterministic DDIM (η = 0) with classifier-free guidance; images [B, 3, r, r] in [0, 1]."""
    prompts = list(prompts)
    if not prompts:
        raise ValueError("prompts: expected at least one prompt")
    gen = generator or torch.Generator().manual_seed(0)
    r = getattr(teacher, "resolution", 32)
    noise = torch.randn(len(prompts), 3, r, r, generator=gen)
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
        for k, t in enumerate(ts.tolist()):
            tt = torch.full((x.shape[0],), t, dtype=torch.long)
            eps = guided_eps(teacher, x, tt, cond, uncond, cfg)
            alpha, sigma = a_bar[t].sqrt(), (1 - a_bar[t]).sqrt()
            x0 = eps_to_x0(x, eps, alpha, sigma).clamp(-1.0, 1.0)
            eps = x0_to_eps(x, x0, alpha, sigma)
            ab_prev = a_bar[ts[k + 1]] if k + 1 < len(ts) else torch.tensor(1.0)
            x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
        outs.append(x)
    return teacher.decode(torch.cat(outs))
