"""The teacher interfaces.

- :class:`Teacher`: what Stable Diffusion, the built-in teacher and the exact world teacher offer
  text-to-3D. Conventions are Stable Diffusion's: ε-prediction on ``x_t = √ᾱ_t·x + √(1−ᾱ_t)·ε``
  with integer timesteps ``t`` in ``[0, T)`` of a VP schedule (:class:`ui3d.diffusion.VPSchedule`);
  prompts are encoded once to a tensor of embeddings (the empty prompt ``""`` is the unconditional one).
- :class:`ScoreModel`: the teacher as the guidance queries it, for every producer of x: ε̂ at
  ``x_t = α·x + σ·ε`` for a :class:`~ui3d.diffusion.NoiseLevel` and a :class:`Conditioning`. The
  adapters in :mod:`ui3d.teachers.guided` turn a Teacher, a VP network or a Gaussian mixture into one.

Classifier-free guidance is ``ε = ε_u + s·(ε_c − ε_u)`` (:func:`cfg_combine`), for every teacher.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence, runtime_checkable

import torch
from torch import Tensor

from ui3d.cameras import Cameras
from ui3d.diffusion import NoiseLevel, VPSchedule

__all__ = ["Teacher", "Conditioning", "ScoreModel", "cfg_combine", "guided_prediction", "guided_eps",
           "pixel_encode", "pixel_decode"]


@runtime_checkable
class Teacher(Protocol):
    """A frozen text-conditional ε-prediction diffusion model.

    ``takes_camera``: whether ``predict_eps`` reads each sample's camera (a camera-conditioned model,
    or an oracle that renders the truth there); the guidance passes the batch's cameras only then.
    ``clip_sample``: whether its samples live in [−1, 1] (pixels: a sampler clamps x̂_0 there; not
    VAE latents), diffusers' name for it."""

    schedule: VPSchedule
    takes_camera: bool
    clip_sample: bool

    @property
    def alphas_cumprod(self) -> Tensor: ...

    def encode(self, rgb: Tensor) -> Tensor:
        """Images [B, 3, H, W] in [0, 1] -> the model's space x (VAE latents; [-1, 1] pixels)."""
        ...

    def decode(self, x: Tensor) -> Tensor:
        """The model's space -> images [B, 3, H, W] in [0, 1]."""
        ...

    def encode_prompts(self, prompts: Sequence[str]) -> Tensor:
        """Prompt embeddings [B, ...]; raises ValueError for a prompt the teacher cannot read."""
        ...

    def predict_eps(self, x_t: Tensor, t: Tensor, embeddings: Tensor, camera: Cameras | None = None) -> Tensor:
        """ε̂(x_t, t, c): x_t [B, C, h, w], t [B] integer timesteps, embeddings [B, ...]; ``camera``
        (a :class:`~ui3d.cameras.Cameras` of B) only for a teacher that ``takes_camera``."""
        ...


@dataclass(frozen=True)
class Conditioning:
    """What one batch is conditioned on; the guidance hands it unchanged to the teacher and the fake
    score, and each reads what it needs (all None: an unconditional model, e.g. the 2-D mixtures)."""

    cond: Tensor | None = None  # per-sample prompt embeddings or class labels
    uncond: Tensor | None = None  # the unconditional embedding for CFG, batch 1 or B (None: no CFG)
    negative: Tensor | None = None  # Perp-Neg: the opposite view's embeddings, per sample
    camera: Tensor | None = None  # the fake score's camera condition [B, 16]
    cameras: Cameras | None = None  # the batch's cameras, for a teacher that takes them


class ScoreModel(Protocol):
    """A frozen teacher as the guidance queries it: ε̂ = −σ·∇log p_t(x_t) at x_t = α·x + σ·ε
    (classifier-free guided where the adapter was built with a scale)."""

    def predict(self, x_t: Tensor, level: NoiseLevel, cond: Conditioning = Conditioning()) -> Tensor: ...


def cfg_combine(eps_uncond: Tensor, eps_cond: Tensor, scale: float) -> Tensor:
    """Classifier-free guidance: ε_u + s·(ε_c − ε_u) (s = 1: the conditional model; s = 0: unconditional)."""
    return eps_uncond + scale * (eps_cond - eps_uncond)


def perp_neg_combine(eps_uncond: Tensor, eps_cond: Tensor, eps_neg: Tensor, scale: float, neg_weight: float) -> Tensor:
    """Perp-Neg (Armandpour et al. 2023): ε_u + s·(Δ_c − w·Δ_n⊥), Δ = ε − ε_u, where Δ_n⊥ is the part of
    the negative's direction orthogonal to Δ_c (per sample): the negative can only remove what the
    positive prompt does not ask for."""
    d_c, d_n = eps_cond - eps_uncond, eps_neg - eps_uncond
    dims = tuple(range(1, d_c.ndim))
    along = (d_n * d_c).sum(dims, keepdim=True) / d_c.square().sum(dims, keepdim=True).clamp_min(1e-12)
    return eps_uncond + scale * (d_c - neg_weight * (d_n - along * d_c))


def guided_prediction(
    predict: Callable[[Tensor, Tensor, Tensor | None], Tensor], x_t: Tensor, level: Tensor, cond: Tensor | None,
    uncond: Tensor | None, scale: float, negative: Tensor | None = None, negative_weight: float = 1.0,
) -> Tensor:
    """Guided ``predict(x_t, level, embeddings)`` with one batched forward of [uncond; cond]
    (+ [negative] for Perp-Neg). ``level`` is per sample (VP timesteps or EDM σ); ``uncond`` may
    have batch 1 (broadcast). Scale 1 or no ``uncond`` is the conditional model alone."""
    b = x_t.shape[0]
    if (scale == 1.0 or uncond is None) and negative is None:
        return predict(x_t, level, cond)
    if uncond.shape[0] == 1 and b > 1:
        uncond = uncond.expand(b, *uncond.shape[1:])
    level = torch.as_tensor(level, device=x_t.device).reshape(-1).expand(b)
    embeddings = [uncond, cond] if negative is None else [uncond, cond, negative]
    k = len(embeddings)
    eps = predict(torch.cat([x_t] * k), torch.cat([level] * k), torch.cat(embeddings)).chunk(k)
    if negative is None:
        return cfg_combine(eps[0], eps[1], scale)
    return perp_neg_combine(eps[0], eps[1], eps[2], scale, negative_weight)


def guided_eps(
    teacher: Teacher, x_t: Tensor, t: Tensor, cond: Tensor, uncond: Tensor, scale: float,
    negative: Tensor | None = None, negative_weight: float = 1.0, cameras: Cameras | None = None,
) -> Tensor:
    """A :class:`Teacher`'s guided ε at integer timesteps t (see :func:`guided_prediction`). Every
    branch of the guidance (unconditional, conditional, negative) sees the sample's own camera."""
    if not teacher.takes_camera or cameras is None:  # a teacher that needs cameras says so itself
        return guided_prediction(teacher.predict_eps, x_t, t, cond, uncond, scale, negative, negative_weight)

    def predict(x: Tensor, level: Tensor, embeddings: Tensor) -> Tensor:
        copies = x.shape[0] // len(cameras)  # guided_prediction batches the branches: repeat the cameras
        return teacher.predict_eps(x, level, embeddings, cameras[torch.arange(len(cameras)).repeat(copies)])

    return guided_prediction(predict, x_t, t, cond, uncond, scale, negative, negative_weight)


def pixel_encode(rgb: Tensor, resolution: int) -> Tensor:
    """Pixel teachers' ``encode``: images [B, 3, H, W] in [0, 1] → [−1, 1] at the model's resolution
    (antialiased resize when the render size differs)."""
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        raise ValueError(f"rgb: expected [B, 3, H, W], got {tuple(rgb.shape)}")
    if rgb.shape[-2:] != (resolution, resolution):
        import torch.nn.functional as F

        rgb = F.interpolate(rgb, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
    return rgb * 2.0 - 1.0


def pixel_decode(x: Tensor) -> Tensor:
    """Pixel teachers' ``decode``: [−1, 1] → images in [0, 1]."""
    return ((x + 1.0) / 2.0).clamp(0.0, 1.0)
