"""Time weights w(t) of the expanded divergence D_f^w, in score units (UNI_INSTRUCT.md §1.3, §4).

Each weighting maps (α_t, σ_t, x_0, x̂0 of the teacher) to a detached per-sample weight [B]:

- ``none``: w = 1.
- ``sds``: w = σ³/α. Static reverse KL then gives ∂L/∂x_0 = σ²(ε̂_p − ε̂_q) = (1−ᾱ_t)(ε̂_p − ε̂_q),
  threestudio's SDS/VSD weighting (§5 reduction (i)).
- ``mean_abs``: w = σ⁴/(2α²) / sg[mean|x_0 − x̂0_p|]: the DMD/SiD per-sample normaliser ω of the
  denoiser-unit loss L_EDM = ω·{…} (for α = 1, ω = 2w/σ⁴).
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor

Weighting = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]


def _flat(v: Tensor, batch: int) -> Tensor:
    """α or σ given as a scalar, [B] or [B,1,...] → [B]."""
    return v.reshape(-1).expand(batch) if v.numel() == 1 else v.reshape(batch)


def weight_none(alpha: Tensor, sigma: Tensor, x0: Tensor, x0_teacher: Tensor) -> Tensor:
    return x0.new_ones(x0.shape[0])


def weight_sds(alpha: Tensor, sigma: Tensor, x0: Tensor, x0_teacher: Tensor) -> Tensor:
    b = x0.shape[0]
    return (_flat(sigma, b) ** 3 / _flat(alpha, b)).detach()


def weight_mean_abs(alpha: Tensor, sigma: Tensor, x0: Tensor, x0_teacher: Tensor, eps: float = 1e-8) -> Tensor:
    b = x0.shape[0]
    norm = (x0 - x0_teacher).detach().abs().flatten(1).mean(1).clamp_min(eps)
    return (_flat(sigma, b) ** 4 / (2 * _flat(alpha, b) ** 2) / norm).detach()


WEIGHTINGS: dict[str, Weighting] = {"none": weight_none, "sds": weight_sds, "mean_abs": weight_mean_abs}
