"""Uni-Instruct guidance in denoiser (EDM, variance-exploding) units: the two turns of §3.

A *teacher* is anything with ``denoise(x_t, σ) -> x̂0``; a *fake score* also has
``log_ratio(x_t, σ) -> log(p_t/q_t)`` per sample (a discriminator logit, or exact for oracles).
The math is the divergence core's; this module only wires networks to it and enforces the
stop-gradients: fake-score parameters are frozen during the generator turn, and the fake-score turn
only ever sees detached generator samples.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Literal, Protocol

import torch
from torch import Tensor, nn

from ui3d.diffusion import edm_loss_weight
from ui3d.divergence import (
    LossOutput, PaperCodeOptions, denoising_loss, discriminator_loss, generator_loss, get_divergence,
    loss_weight, ratio_from_logits, score_terms_from_x0,
)
from ui3d.divergence.table import depends_on_ratio


class Denoiser(Protocol):
    def denoise(self, x_t: Tensor, sigma: Tensor) -> Tensor: ...


class FakeScore(Denoiser, Protocol):
    def log_ratio(self, x_t: Tensor, sigma: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class GuidanceConfig:
    divergence: str = "fkl"
    mode: Literal["exact", "sim_sg", "static", "paper_code"] = "exact"
    weighting: Literal["none", "sds", "mean_abs"] = "mean_abs"
    max_abs_logit: float = 5.0  # clamp of log r
    self_normalize_ratio: bool = True  # r ← r / mean_batch(r) (f-distill's variance reduction)
    sid_alpha: float = 1.0  # mode paper_code only
    fisher_weight: float = 0.0  # mode paper_code only

    def __post_init__(self) -> None:
        get_divergence(self.divergence)  # fail at load time with the list of names


@contextmanager
def frozen(module: object) -> Iterator[None]:
    """Temporarily stop gradients into an nn.Module's parameters (inputs stay differentiable)."""
    params = [p for p in module.parameters() if p.requires_grad] if isinstance(module, nn.Module) else []
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def _per_sample(sigma: Tensor, like: Tensor) -> Tensor:
    return sigma.reshape(-1, *([1] * (like.ndim - 1)))


def generator_turn_loss(
    cfg: GuidanceConfig, teacher: Denoiser, fake: FakeScore, x_g: Tensor, sigma: Tensor, noise: Tensor
) -> LossOutput:
    """The generator's loss at x_t = x_g + σ·n: gradients reach x_g only (§3 B, steps 8–11)."""
    div = get_divergence(cfg.divergence)
    s = _per_sample(sigma, x_g)
    x_t = x_g + s * noise
    with frozen(teacher), frozen(fake):
        d_p = teacher.denoise(x_t, sigma)
        d_q = fake.denoise(x_t, sigma)
        ratio = 1.0
        if depends_on_ratio(div):
            with torch.no_grad():
                log_r = fake.log_ratio(x_t, sigma)
            ratio = ratio_from_logits(log_r, max_abs_logit=cfg.max_abs_logit, self_normalize=cfg.self_normalize_ratio)
    one = torch.ones_like(s)
    terms = score_terms_from_x0(x_t, d_p, d_q, x_g, one, s)
    weight = loss_weight(cfg.weighting, cfg.mode, one, s, x_g, d_p)
    options = PaperCodeOptions(cfg.sid_alpha, cfg.fisher_weight)
    return generator_loss(terms, div, mode=cfg.mode, ratio=ratio, weight=weight, paper_code=options)


@dataclass
class FakeTurnLosses:
    denoising: LossOutput
    discriminator: LossOutput | None

    @property
    def total(self) -> Tensor:
        return self.denoising.loss + (self.discriminator.loss if self.discriminator is not None else 0.0)


def fake_turn_loss(
    fake: nn.Module, x_g: Tensor, x_real: Tensor | None, sigma: Tensor, noise: Tensor, sigma_data: float
) -> FakeTurnLosses:
    """DSM on detached generator samples, plus the real-vs-fake BCE at the same σ and noise (§1.5, §3 A).

    The BCE is unweighted: with the image code's λ_EDM(σ) (≈ 400× larger at σ = 0.05 than at σ = 8
    in the 2-D benchmark) the ratio came out over-confident at large σ.
    """
    x_g = x_g.detach()
    s = _per_sample(sigma, x_g)
    weight = edm_loss_weight(sigma, sigma_data)
    x_t = x_g + s * noise
    dsm = denoising_loss(fake.denoise(x_t, sigma), x_g, weight)
    disc = None
    if x_real is not None:
        logit_fake = fake.log_ratio(x_t, sigma)
        logit_real = fake.log_ratio(x_real + s * noise, sigma)
        disc = discriminator_loss(logit_real, logit_fake)
    return FakeTurnLosses(dsm, disc)
