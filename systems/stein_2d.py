"""An experimental generator gradient for the 2-D benchmark that uses the fake score only through y.

The exact surrogate's 2r·h'·⟨ȳ, c̄⟩ term (UNI_INSTRUCT.md §1.3) assumes E[c | x_t] = 0, which holds
only when the fake score is q_t's exact score; a lagging fake biases it
(``tests/divergence/test_fake_lag.py``). The score-function form of the same gradient needs no c:

    ∇_θ E_q[h(r)·‖y‖²] = E[Ψ(x_t)·(ε/σ)ᵀ·∂x_t/∂θ],   Ψ = 2h(r)·(∇·y + yᵀs_p) − k(r)·‖y‖²,

Ψ being the first variation of E_q[h(p/q)·‖s_p − s_q‖²] in q (integration by parts, ∇r = r·y),
and (ε/σ)ᵀ∂x_t/∂θ the derivative of log q_t(x_t) in θ given the generator's latent. For forward KL
Ψ = 2r·(∇·y + yᵀs_p). The divergence ∇·y is exact by autograd (D backward passes: cheap in 2-D, not
an option for images). A leave-one-out batch mean of w·Ψ is subtracted as a control variate:
E[(ε/σ)ᵀ∂x_t/∂θ] = 0 for every latent, so it changes the variance, not the mean.

As a command (the ``ui3d bench distill2d`` table, with this gradient in place of the core's)::

    python -m systems.stein_2d --out DIR --divergences fkl --seeds 3 --jobs 2 [key=value overrides]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import torch
from torch import Tensor

from systems.bench_2d import hooked_bench_main
from systems.distill_2d import TrainHooks
from ui3d.diffusion import Noise, NoiseLevel, eps_to_x0, per_sample
from ui3d.divergence import Divergence, loss_weight, ratio_from_logits
from ui3d.guidance import GeneratorTurn, Guidance, frozen


def stein_psi(div: Divergence, r: Tensor, y: Tensor, div_y: Tensor, s_p: Tensor) -> Tensor:
    """Ψ = 2h(r)·(∇·y + yᵀs_p) − k(r)·‖y‖² per sample [B] (y, s_p [B, D]; r, div_y [B])."""
    return 2 * div.h(r) * (div_y + (y * s_p).sum(1)) - div.k(r) * (y * y).sum(1)


def divergence_of(field: Tensor, x: Tensor, create_graph: bool = False) -> Tensor:
    """∇·field at x [B, D] by autograd, one backward pass per dimension; [B], with its own graph
    (through x) only when ``create_graph``."""
    total = torch.zeros(x.shape[0], dtype=x.dtype)
    for i in range(x.shape[1]):
        (grad,) = torch.autograd.grad(field[:, i].sum(), x, retain_graph=True, create_graph=create_graph)
        total = total + grad[:, i]
    return total


def baseline(v: Tensor) -> Tensor:
    """Per sample i, the mean of v over the batch without i and i−1: sample i−1's weight is taken
    with sample i's noise (:func:`stein_generator_loss`), so neither may enter i's baseline."""
    n = v.shape[0]
    return (v.sum() - v - v.roll(1, 0)) / max(n - 2, 1)


def score_function_loss(weighted_psi: Tensor, eps: Tensor, sigma: Tensor, x_t: Tensor) -> Tensor:
    """Per-sample surrogate (wΨ − b)·⟨ε/σ, x_t⟩, wΨ detached: its θ-gradient is (wΨ − b)·(ε/σ)ᵀ∂x_t/∂θ."""
    coef = (weighted_psi - baseline(weighted_psi)).detach()
    return coef * ((eps / per_sample(sigma, eps)) * x_t).flatten(1).sum(1)


@dataclass(frozen=True)
class _Scores:
    """What Ψ needs at x_t [B, D]: s_p, y = s_p − s_f, ∇·y, r, the weight w; graphs as asked."""

    s_p: Tensor
    y: Tensor
    div_y: Tensor
    r: Tensor
    w: Tensor


def _scores(guidance: Guidance, x: Tensor, x_t: Tensor, level: NoiseLevel, graph: bool,
            weight_x_t: Tensor | None = None) -> _Scores:
    """At x_t (a leaf for the score-function form; the generator's graph for the pathwise one). With
    ``graph``, r keeps the discriminator's input gradient: value r̄ (clamped, normalised), gradient r̄·∇logit.
    ``weight_x_t``: where the teacher's x̂_0 for the mean_abs weight is taken (default x_t)."""
    cfg, sigma = guidance.cfg, per_sample(level.sigma, x)
    with frozen(guidance.teacher), frozen(guidance.fake):
        eps_p = guidance.teacher.predict(x_t, level)
        fake = guidance.fake.predict(x_t, level, with_logit=guidance.uses_ratio)
    s_p, y = -eps_p / sigma, (fake.eps - eps_p) / sigma
    div_y = divergence_of(y, x_t, create_graph=graph)
    r = x.new_ones(x.shape[0])
    if guidance.uses_ratio:
        r = ratio_from_logits(fake.logit, max_abs_logit=cfg.max_abs_logit, self_normalize=cfg.self_normalize_ratio)
        if graph:
            logit = fake.logit.clamp(-cfg.max_abs_logit, cfg.max_abs_logit)
            r = r * (logit - logit.detach()).exp()
    if weight_x_t is None:
        teacher_x0 = eps_to_x0(x_t, eps_p, per_sample(level.alpha, x), sigma).detach()
    else:
        with torch.no_grad():
            teacher_x0 = eps_to_x0(weight_x_t, guidance.teacher.predict(weight_x_t, level), per_sample(level.alpha, x), sigma)
    w = loss_weight(cfg.weighting, "exact", level.alpha, level.sigma, x, teacher_x0)
    if not graph:
        s_p, y, div_y = s_p.detach(), y.detach(), div_y.detach()
    return _Scores(s_p, y, div_y, r, w)


def _turn(per_sample_loss: Tensor, guidance: Guidance, sc: _Scores) -> GeneratorTurn:
    nonfinite = int((~torch.isfinite(per_sample_loss.detach())).sum())
    y = sc.y.detach()
    monitor = sc.w * guidance.divergence.h(sc.r.detach()) * (y * y).sum(1)
    return GeneratorTurn(per_sample_loss.mean(), per_sample_loss, nonfinite, monitor)


def _with_next_noise(x: Tensor, noise: Noise) -> Tensor:
    """α·x_i + σ_i·ε_{i+1} (detached): a noisy point independent of the sample's own ε."""
    return Noise(noise.level, noise.eps.roll(-1, 0)).apply(x.detach())


def stein_generator_loss(guidance: Guidance, x: Tensor, noise: Noise) -> GeneratorTurn:
    """The generator turn of :class:`~ui3d.guidance.Guidance` (2-D, unconditional) with the
    score-function gradient above; weighting and ratio as the config says (exact mode's weight).

    The mean_abs weight ω = 1/mean|x_0 − x̂0_p| is taken at the next sample's noise: taken at the
    sample's own x_t it depends on ε, and E[w(ε)·ε] ≠ 0 adds a drift (measured: reverse KL with the
    exact oracle fell onto 1 mode of 8 on 3 seeds)."""
    x_t = noise.apply(x)
    sc = _scores(guidance, x, x_t.detach().requires_grad_(True), noise.level, graph=False,
                 weight_x_t=_with_next_noise(x, noise))
    weighted_psi = sc.w * stein_psi(guidance.divergence, sc.r, sc.y, sc.div_y, sc.s_p)
    return _turn(score_function_loss(weighted_psi, noise.eps, noise.level.sigma, x_t), guidance, sc)


def pathwise_generator_loss(guidance: Guidance, x: Tensor, noise: Noise) -> GeneratorTurn:
    """The same gradient's pathwise form: w·Ψ(x_t) differentiated through x_t (E_ε[Ψ·ε/σ] = E_ε[∇Ψ],
    Stein's lemma per latent). Needs third derivatives of the networks; no ε/σ factor in its variance.
    The weight is taken as in :func:`stein_generator_loss`, so that both forms estimate the same thing."""
    sc = _scores(guidance, x, noise.apply(x), noise.level, graph=True, weight_x_t=_with_next_noise(x, noise))
    return _turn(sc.w * stein_psi(guidance.divergence, sc.r, sc.y, sc.div_y, sc.s_p), guidance, sc)


ESTIMATORS = {"score_function": stein_generator_loss, "pathwise": pathwise_generator_loss}


def main(argv: list[str] | None = None) -> int:
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--estimator", default="score_function", choices=sorted(ESTIMATORS))

    # oracle=exact (closed-form scores and ratio) tells the estimator's variance from the fake's lag
    return hooked_bench_main(argv, "stein_2d", __doc__.splitlines()[0], add_arguments,
                             lambda args, base: TrainHooks(generator_loss=ESTIMATORS[args.estimator]))


if __name__ == "__main__":
    sys.exit(main())
