"""Time weights w(t) of the expanded divergence D_f^w, in score units (UNI_INSTRUCT.md §1.3, §4, §5).

``loss_weight(kind, mode, ...)`` returns a detached per-sample weight [B]:

- ``none``: w = 1.
- ``sds``: w = σ³/α. Static reverse KL then gives ∂L/∂x_0 = σ²(ε̂_p − ε̂_q) = (1−ᾱ_t)(ε̂_p − ε̂_q),
  threestudio's SDS/VSD weighting (§5 reduction (i)).
- ``mean_abs``: the DMD/SiD normaliser ω = 1/sg[mean|x_0 − x̂0_p|], defined in *denoiser* units.
  Converting to score units depends on the mode's degree in the scores: the quadratic modes
  (exact, exact_cv, sim_sg, paper_code) use L_EDM = ω·{…} = (σ⁴/2α²)·ω·L_score, so w = σ⁴ω/(2α²) and exact
  reverse KL is SiD(α=½) with SiD's ω; static mode is linear in the scores, so w = σ²ω/α² and its
  gradient is Diff-Instruct's ω·(x̂0_q − x̂0_p).

``adversarial_weight`` is the same ω for SiDA's generator GAN term (§1.5).

Mode ``by_parts`` (``by_parts.py``) weights each sample's static loss by Λ'/π, built from the
quadratic modes' weight on the sampler's levels (``time_weight``); mean_abs's ω stays a per-sample
factor, as it is in ``exact``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .by_parts import NoiseTable, by_parts_multipliers

WEIGHTINGS: tuple[str, ...] = ("none", "sds", "mean_abs")


def _flat(v: Tensor | float, like: Tensor) -> Tensor:
    """α or σ given as a number, [B] or [B,1,...] → [B]."""
    v = like.new_tensor(v) if not isinstance(v, Tensor) else v.to(like)
    return v.reshape(-1).expand(like.shape[0]) if v.numel() == 1 else v.reshape(like.shape[0])


def mean_abs_omega(x0: Tensor, x0_teacher: Tensor) -> Tensor:
    """ω = 1/sg[mean|x_0 − x̂0_p|] per sample [B] (DMD/SiD's normaliser, in denoiser units)."""
    return 1.0 / (x0 - x0_teacher).detach().abs().flatten(1).mean(1).clamp_min(1e-8)


def adversarial_weight(x0: Tensor, x0_teacher: Tensor) -> Tensor:
    """SiDA's weight of the generator's GAN term: ω·(elements per sample), i.e. the BCE divided by
    mean|x_g − D_p| and multiplied by C·H·W, as in the image code (§1.5)."""
    return mean_abs_omega(x0, x0_teacher) * x0[0].numel()


def time_weight(kind: str, alpha: Tensor, sigma: Tensor) -> Tensor:
    """The part of the quadratic modes' weight that depends on the noise level only."""
    if kind == "none":
        return torch.ones_like(sigma)
    if kind == "sds":
        return sigma**3 / alpha
    if kind == "mean_abs":
        return sigma**4 / (2 * alpha**2)
    raise ValueError(f"unknown weighting '{kind}' (choices: {', '.join(WEIGHTINGS)})")


def by_parts_weight(
    kind: str, table: NoiseTable, alpha: Tensor | float, sigma: Tensor | float, x0: Tensor,
    x0_teacher: Tensor | None = None,
) -> Tensor:
    """The per-sample weight of mode ``by_parts``: Λ'/π at each sample's level of ``table`` (times
    mean_abs's ω), for ``generator_loss(mode="by_parts")``."""
    a, s = _flat(alpha, x0), _flat(sigma, x0)
    multipliers = by_parts_multipliers(table, time_weight(kind, table.alpha, table.sigma))
    weight = multipliers[table.index(a, s)].to(x0)
    if kind == "mean_abs":
        if x0_teacher is None:
            raise ValueError("weighting 'mean_abs' needs the teacher's x0 prediction")
        weight = weight * mean_abs_omega(x0, x0_teacher)
    return weight.detach()


def loss_weight(
    kind: str, mode: str, alpha: Tensor | float, sigma: Tensor | float, x0: Tensor, x0_teacher: Tensor | None = None
) -> Tensor:
    """The per-sample weight w(t) for ``generator_loss``; x0_teacher is needed by ``mean_abs``."""
    a, s = _flat(alpha, x0), _flat(sigma, x0)
    if kind == "none":
        return x0.new_ones(x0.shape[0])
    if kind == "sds":
        return time_weight(kind, a, s).detach()
    if kind == "mean_abs":
        if x0_teacher is None:
            raise ValueError("weighting 'mean_abs' needs the teacher's x0 prediction")
        scale = s**2 / a**2 if mode == "static" else time_weight(kind, a, s)
        return (scale * mean_abs_omega(x0, x0_teacher)).detach()
    raise ValueError(f"unknown weighting '{kind}' (choices: {', '.join(WEIGHTINGS)})")
