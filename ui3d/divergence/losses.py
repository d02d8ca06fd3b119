"""Uni-Instruct losses as pure functions over tensors (UNI_INSTRUCT.md §1.3, §1.5, §3).

Everything is in *score units*: y = s_p(x_t) − s_q(x_t) and c = s_q(x_t) − ∇log q(x_t|x_0)
= s_q(x_t) + ε/σ_t, both evaluated at the same noisy x_t = α_t·x_0 + σ_t·ε. The ``score_terms_*``
constructors convert from ε-prediction (Stable Diffusion) or x0-prediction (EDM denoisers).

Stop-gradient rules (§1.3): y and c keep the autograd graph through the networks' *inputs* x_t
(network parameters are frozen by the caller); r̄, ȳ, c̄ are detached; x_t is the only path to θ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .table import Divergence


@dataclass(frozen=True)
class ScoreTerms:
    """The score quantities of one batch at the same noisy x_t, in score units, shape [B, ...]."""

    x_t: Tensor  # noisy sample; carries the graph to the generator's parameters
    y: Tensor  # s_p(x_t) − s_q(x_t), graph through the networks' inputs
    c: Tensor  # s_q(x_t) + ε/σ_t, graph through the networks' inputs


@dataclass
class LossOutput:
    """A loss reduced over the batch, its per-sample values and a count of non-finite samples.

    Non-finite samples are never dropped: they make ``loss`` non-finite, and the training loop
    counts, logs and skips such a step (DESIGN rule 6).
    """

    loss: Tensor
    per_sample: Tensor
    nonfinite: int
    # Monitoring only (detached): per-sample estimate of the expanded divergence integrand
    # w·h(r̄)·‖ȳ‖² (generator loss), or None for other losses.
    divergence: Tensor | None = None


def _sample_dot(a: Tensor, b: Tensor) -> Tensor:
    """Per-sample inner product over all but the batch dimension."""
    return (a * b).flatten(1).sum(1)


def _reduce(per_sample: Tensor, divergence: Tensor | None = None) -> LossOutput:
    nonfinite = int((~torch.isfinite(per_sample.detach())).sum())
    return LossOutput(per_sample.mean(), per_sample, nonfinite, divergence)


def _per_sample(value: Tensor | float, batch: int, like: Tensor) -> Tensor:
    """Broadcast a scalar or [B] weight to shape [B]."""
    v = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return v.expand(batch) if v.ndim == 0 else v.reshape(batch)


# ---------------------------------------------------------------------------------------------
# Conversions into score terms


def score_terms_from_scores(x_t: Tensor, s_p: Tensor, s_q: Tensor, eps: Tensor, sigma: Tensor) -> ScoreTerms:
    """From scores: y = s_p − s_q, c = s_q + ε/σ (σ broadcastable to x_t)."""
    return ScoreTerms(x_t, s_p - s_q, s_q + eps / sigma)


def score_terms_from_eps(x_t: Tensor, eps_p: Tensor, eps_q: Tensor, eps: Tensor, sigma: Tensor) -> ScoreTerms:
    """From ε-predictions (s = −ε̂/σ): y = (ε̂_q − ε̂_p)/σ, c = (ε − ε̂_q)/σ.

    SDS is the case eps_q = eps (the fake score is the Dirac's exact score), so c = 0.
    """
    return ScoreTerms(x_t, (eps_q - eps_p) / sigma, (eps - eps_q) / sigma)


def score_terms_from_x0(
    x_t: Tensor, x0_p: Tensor, x0_q: Tensor, x0: Tensor, alpha: Tensor, sigma: Tensor
) -> ScoreTerms:
    """From x0-predictions (denoisers; s = (α·x̂0 − x_t)/σ²): y = α(x̂0_p − x̂0_q)/σ², c = α(x̂0_q − x0)/σ².

    ``x0`` is the generator output x_g (with graph); c uses it only through ε = (x_t − α·x0)/σ,
    which is constant under reparameterisation, so its graph cancels exactly.
    """
    var = sigma * sigma
    return ScoreTerms(x_t, alpha * (x0_p - x0_q) / var, alpha * (x0_q - x0) / var)


# ---------------------------------------------------------------------------------------------
# Generator loss in its four modes (§1.3, §1.4)


@dataclass(frozen=True)
class PaperCodeOptions:
    """Switches of mode 'paper_code' (the released code's h·SIM + r·k'·DI, §1.4)."""

    sid_alpha: float = 1.0  # SiD's α in h·(2yᵀc + 2(1−α)‖y‖²); the released code hard-codes 1
    fisher_weight: float = 0.0  # weight of k(r̄)·‖y‖² (commented out in the released code)


def _grad_only(x: Tensor) -> Tensor:
    """Zero in value, identity in gradient: keeps the surrogate's value meaningful."""
    return x - x.detach()


def _exact(t: ScoreTerms, r: Tensor, div: Divergence, _: PaperCodeOptions) -> Tensor:
    """L_UI: 2h(r̄)·yᵀc + k(r̄)·‖y‖² + (2r̄h'⟨ȳ,c̄⟩ + r̄k'‖ȳ‖²)·⟨ȳ, x_t⟩."""
    return _theorem_b(t, r, div, _sample_dot(t.y.detach(), t.c.detach()))


def _theorem_b(t: ScoreTerms, r: Tensor, div: Divergence, coupling: Tensor) -> Tensor:
    """The exact surrogate with the DI term's ⟨ȳ, c̄⟩ given as ``coupling`` [B]."""
    y_bar = t.y.detach()
    di_coef = div.two_r_dh(r) * coupling + div.r_dk(r) * _sample_dot(y_bar, y_bar)
    return (
        2 * div.h(r) * _sample_dot(t.y, t.c)
        + div.k(r) * _sample_dot(t.y, t.y)
        + di_coef * _sample_dot(y_bar, _grad_only(t.x_t))
    )


def lag_corrected_coupling(y_bar: Tensor, c_bar: Tensor) -> Tensor:
    """⟨ȳ, c̄⟩ per sample less β̂‖ȳ‖²: the part a lagging fake score adds, fitted to the batch.

    With an exact fake score E[⟨y, c⟩ | x_t] = 0. With a fake that has learned only a fraction κ of
    the student (s_f = (1−κ)s_p + κs_q) it is ⟨y, s_f − s_q⟩ = β‖y‖², β = (1−κ)/κ: a bias that, summed
    over many dimensions, turns the exact gradient around (tests/divergence/test_fake_lag.py). β̂ is
    the least-squares fit of ⟨ȳ, c̄⟩ on ‖ȳ‖² over the *other* samples (leave-one-out: a sample's own
    noise stays out of its centre, so an exact fake keeps the exact gradient's mean). Scaling with
    ‖ȳ‖² keeps the centre at each sample's own noise level. A batch of two or fewer is left alone."""
    coupling, yy = _sample_dot(y_bar, c_bar), _sample_dot(y_bar, y_bar)
    if coupling.shape[0] <= 2:
        return coupling
    cross, square = coupling * yy, yy * yy
    beta = (cross.sum() - cross) / (square.sum() - square).clamp_min(torch.finfo(yy.dtype).tiny)
    return coupling - beta * yy


def _exact_cv(t: ScoreTerms, r: Tensor, div: Divergence, _: PaperCodeOptions) -> Tensor:
    """L_UI with the fake score's lag fitted out of ⟨ȳ, c̄⟩ (:func:`lag_corrected_coupling`)."""
    return _theorem_b(t, r, div, lag_corrected_coupling(t.y.detach(), t.c.detach()))


def _sim_sg(t: ScoreTerms, r: Tensor, div: Divergence, _: PaperCodeOptions) -> Tensor:
    """h(r̄)·2yᵀc only: the sampling law held fixed (SiD α=1 / SIM-ℓ2 for reverse KL)."""
    return 2 * div.h(r) * _sample_dot(t.y, t.c)


def _static(t: ScoreTerms, r: Tensor, div: Divergence, _: PaperCodeOptions) -> Tensor:
    """f-distill: gradient h(r̄)·(s_q − s_p)ᵀ∂x_t/∂θ (Diff-Instruct / VSD / SDS for reverse KL)."""
    return -div.h(r) * _sample_dot(t.y.detach(), _grad_only(t.x_t))


def _paper_code(t: ScoreTerms, r: Tensor, div: Divergence, opt: PaperCodeOptions) -> Tensor:
    """h·SIM (SiD-α form) + r·k'·DI (+ k·Fisher): the released code, without the 2rh'⟨y,c⟩ term."""
    y_bar = t.y.detach()
    yy = _sample_dot(t.y, t.y)
    sim = 2 * _sample_dot(t.y, t.c) + 2 * (1 - opt.sid_alpha) * yy
    di = div.r_dk(r) * _sample_dot(y_bar, y_bar) * _sample_dot(y_bar, _grad_only(t.x_t))
    return div.h(r) * sim + di + opt.fisher_weight * div.k(r) * yy


GeneratorMode = Callable[[ScoreTerms, Tensor, Divergence, PaperCodeOptions], Tensor]
MODES: dict[str, GeneratorMode] = {
    "exact": _exact,
    "exact_cv": _exact_cv,
    "sim_sg": _sim_sg,
    "static": _static,
    # Theorem B's gradient as static losses weighted by Λ'/π (by_parts.py): the caller passes those
    # weights (weighting.by_parts_weight); with any other weight this is static mode
    "by_parts": _static,
    "paper_code": _paper_code,
}


def generator_loss(
    terms: ScoreTerms,
    divergence: Divergence,
    *,
    mode: str = "exact",
    ratio: Tensor | float = 1.0,
    weight: Tensor | float = 1.0,
    paper_code: PaperCodeOptions = PaperCodeOptions(),
    divergence_weight: Tensor | float | None = None,
) -> LossOutput:
    """The Uni-Instruct generator surrogate, E[w(t)·L_mode]; its gradient is ∇_θ D_f^w (modes exact, by_parts).

    ratio: r̄ = p_t/q_t per sample (detached here), or 1 where no ratio estimator is used.
    weight: w(t) per sample (see ``weighting``), detached here; for mode by_parts, ``by_parts_weight``.
    divergence_weight: the w of the monitored integrand w·h(r̄)·‖ȳ‖² where it is not ``weight`` (by_parts).
    """
    if mode not in MODES:
        raise ValueError(f"unknown generator-loss mode '{mode}' (choices: {', '.join(MODES)})")
    batch = terms.x_t.shape[0]
    r = _per_sample(ratio, batch, terms.y).detach()
    w = _per_sample(weight, batch, terms.y).detach()
    per_sample = w * MODES[mode](terms, r, divergence, paper_code)
    y_bar = terms.y.detach()
    w_monitor = w if divergence_weight is None else _per_sample(divergence_weight, batch, terms.y).detach()
    monitor = w_monitor * divergence.h(r) * _sample_dot(y_bar, y_bar)
    return _reduce(per_sample, monitor)


# ---------------------------------------------------------------------------------------------
# Fake score, discriminator, adversarial term, density ratio (§1.5, §3)


def denoising_loss(prediction: Tensor, target: Tensor, weight: Tensor | float = 1.0) -> LossOutput:
    """Denoising score matching: w·mean‖prediction − target‖² per sample.

    ε-parametrised (SD): prediction ε̂, target ε, w = 1. EDM: prediction D(x_t), target x_0,
    w = λ_EDM(σ) (``diffusion.edm_loss_weight``).
    """
    per_sample = (prediction - target).pow(2).flatten(1).mean(1)
    return _reduce(_per_sample(weight, per_sample.shape[0], per_sample) * per_sample)


def _per_sample_logit_mean(logits: Tensor) -> Tensor:
    return logits.flatten(1).mean(1) if logits.ndim > 1 else logits


def discriminator_loss(logit_real: Tensor, logit_fake: Tensor, weight: Tensor | float = 1.0) -> LossOutput:
    """w·½[BCE(logit_real, 1) + BCE(logit_fake, 0)]; logits may be per-sample or spatial maps."""
    real = _per_sample_logit_mean(F.softplus(-logit_real))
    fake = _per_sample_logit_mean(F.softplus(logit_fake))
    per_sample = 0.5 * (real + fake)
    return _reduce(_per_sample(weight, per_sample.shape[0], per_sample) * per_sample)


def generator_adversarial_loss(logit_fake: Tensor, weight: Tensor | float = 1.0) -> LossOutput:
    """Non-saturating GAN term for the generator: w·BCE(logit(x_t^g), 1) = w·softplus(−logit)."""
    per_sample = _per_sample_logit_mean(F.softplus(-logit_fake))
    return _reduce(_per_sample(weight, per_sample.shape[0], per_sample) * per_sample)


def ratio_from_logits(logits: Tensor, *, max_abs_logit: float = 10.0, self_normalize: bool = False) -> Tensor:
    """r = exp(logit) per sample, detached (§1.5): the optimal BCE logit is log(p_t/q_t).

    A spatial logit map is averaged per sample first. Logits are clamped to ±max_abs_logit;
    ``self_normalize`` divides by the batch mean of r (f-distill's variance reduction).
    """
    if max_abs_logit <= 0:
        raise ValueError(f"max_abs_logit must be positive, got {max_abs_logit}")
    logit = _per_sample_logit_mean(logits.detach()).clamp(-max_abs_logit, max_abs_logit)
    r = logit.exp()
    return r / r.mean() if self_normalize else r
