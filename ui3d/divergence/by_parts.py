"""Theorem B's gradient by parts over the noise level: no term that needs an exact fake score.

Theorem A (UNI_INSTRUCT.md §1.2) holds for every θ. Written in u = log(σ/α) (the VE level; VP and
EDM alike), it says dD_u/du = −σ²·Φ(u), with D_u = D_f(p_u‖q_u) the static divergence at level u and
Φ(u) = E_{q_u}[h(r)·‖y‖²] the expanded divergence's integrand in score units. Differentiating in θ:

    ∇_θ Φ(u) = −σ⁻²·∂_u ∇_θ D_u.

For the expanded divergence of a sampler with density π(u) and weight w(u),
D^W = ∫ π·w·Φ du, integrating by parts (Λ = π·w/σ², tapered to zero at both ends so there are no
boundary terms):

    ∇_θ D^W = ∫ Λ'(u)·∇_θ D_u du = E_{u~π}[ (Λ'(u)/π(u)) · ∇_θ D_u ].

∇_θ D_u is the static (f-distill) gradient E[h(r)·(s_q − s_p)ᵀ∂x_t/∂θ], exact given the ratio and the
two scores. So Theorem B's gradient is the static loss with each sample weighted by Λ'/π: the
exact surrogate's 2r̄h'(r̄)⟨ȳ, c̄⟩ term, whose mean is zero only for an exact fake score, never
appears. With a fake that has learned a fraction κ of the generator, s_f = (1−κ)s_p + κs_q, this
estimator gives κ × the true gradient (y shrinks by κ, nothing turns); the exact surrogate's
coupling instead gains κ(1−κ)‖s_p − s_q‖² (tests/divergence/test_by_parts.py).

The taper (a smoothstep over the first and the last ``TAPER_WIDTH`` of the range of u)
makes the minimised objective D^{W·τ}: still ≥ 0 and zero only at p = q, and Λ(ends) = 0. Where Λ
falls (the top of the range) the weights Λ'/π are negative: there the loss raises the static
divergence, the "−∂_u" of the identity. With CFG inside y the teacher is not a diffusion of one
distribution, Theorem A does not hold for it, and this is the static gradient so reweighted, as
``exact`` is then not exact either.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

TAPER_WIDTH = 0.1  # each end's ramp of Λ, as a share of the range of u


@dataclass(frozen=True)
class NoiseTable:
    """The noise levels a sampler draws, ascending in u = log(σ/α), with their probabilities."""

    u: Tensor  # [N], strictly ascending
    prob: Tensor  # [N], sums to 1
    alpha: Tensor  # [N]
    sigma: Tensor  # [N]

    @staticmethod
    def from_draws(alpha: Tensor, sigma: Tensor) -> "NoiseTable":
        """From equally likely draws (a sampler's quantiles, or each level of a uniform grid once);
        draws at the same level are merged and their probabilities added."""
        a, s = torch.broadcast_tensors(alpha.double().reshape(-1), sigma.double().reshape(-1))
        levels, inverse, counts = torch.unique((s / a).log(), sorted=True, return_inverse=True, return_counts=True)
        first = torch.full_like(levels, a.numel(), dtype=torch.long).scatter_reduce(
            0, inverse, torch.arange(a.numel()), "amin")
        return NoiseTable.from_levels(a[first], s[first], counts.double())

    @staticmethod
    def from_levels(alpha: Tensor, sigma: Tensor, prob: Tensor) -> "NoiseTable":
        """From distinct levels and their probabilities (normalised here; levels with none dropped)."""
        keep = prob.reshape(-1) > 0
        a, s, p = (v.double().reshape(-1)[keep] for v in (alpha, sigma, prob))
        if p.numel() < 3:
            raise ValueError(f"mode 'by_parts' needs a range of noise levels, got {p.numel()}")
        u = (s / a).log()
        order = u.argsort()
        return NoiseTable(u[order], p[order] / p.sum(), a[order], s[order])

    def index(self, alpha: Tensor, sigma: Tensor) -> Tensor:
        """The table's level nearest (in u) to each sample's."""
        u = (sigma.double().reshape(-1) / alpha.double().reshape(-1)).log().to(self.u.device)
        right = torch.searchsorted(self.u, u).clamp(1, self.u.numel() - 1)
        left = right - 1
        return torch.where((u - self.u[left]).abs() <= (self.u[right] - u).abs(), left, right)


def _smoothstep(x: Tensor) -> Tensor:
    x = x.clamp(0, 1)
    return x * x * (3 - 2 * x)


def by_parts_multipliers(table: NoiseTable, time_weight: Tensor) -> Tensor:
    """The factor on each level's static loss that makes the batch mean's gradient ∇_θ D^{W·τ}, for the
    weight w = ``time_weight`` [N] on the levels of ``table`` (module docstring).

    Summation by parts on the table itself: with Λ_j = π_j·w_j·τ_j/σ_j² and ∂_u D at level j the
    central difference (D_{j+1} − D_{j−1})/(u_{j+1} − u_{j−1}) (one-sided at the ends),
    −Σ_j Λ_j·∂_u∇D_j = Σ_k c_k·∇D_k, and the factor is c_k/π_k. Differencing D, which is smooth in u,
    not Λ, keeps the steep ramps of the taper exact."""
    u, prob = table.u, table.prob
    ramp = TAPER_WIDTH * (u[-1] - u[0])
    taper = _smoothstep((u - u[0]) / ramp) * _smoothstep((u[-1] - u) / ramp)
    lam = prob * time_weight.double() * taper / table.sigma**2
    n = u.numel()
    up, down = (torch.arange(n) + 1).clamp(max=n - 1), (torch.arange(n) - 1).clamp(min=0)  # each difference's ends
    per_step = lam / (u[up] - u[down])  # Λ_j/(u_up − u_down): ∇D_up gets −, ∇D_down gets +
    coefficient = torch.zeros_like(lam).index_add_(0, down, per_step).index_add_(0, up, -per_step)
    return coefficient / prob
