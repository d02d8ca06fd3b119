"""Conversions between ε-, x0-, v-predictions and scores at x_t = α·x_0 + σ·ε.

α and σ broadcast against x_t. v-prediction assumes a VP schedule (α² + σ² = 1), as diffusers does.
"""

from __future__ import annotations

from torch import Tensor


def eps_to_x0(x_t: Tensor, eps: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    return (x_t - sigma * eps) / alpha


def x0_to_eps(x_t: Tensor, x0: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    return (x_t - alpha * x0) / sigma


def v_to_eps(x_t: Tensor, v: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """v = α·ε − σ·x_0  ⇒  ε = α·v + σ·x_t."""
    return alpha * v + sigma * x_t


def v_to_x0(x_t: Tensor, v: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """v = α·ε − σ·x_0  ⇒  x_0 = α·x_t − σ·v."""
    return alpha * x_t - sigma * v


def eps_to_v(x_t: Tensor, eps: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    return alpha * eps - sigma * eps_to_x0(x_t, eps, alpha, sigma)


def eps_to_score(eps: Tensor, sigma: Tensor) -> Tensor:
    """∇log p_t(x_t) = −ε̂/σ."""
    return -eps / sigma


def x0_to_score(x_t: Tensor, x0: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """∇log p_t(x_t) = (α·x̂_0 − x_t)/σ² (Tweedie)."""
    return (alpha * x0 - x_t) / sigma**2


def score_to_eps(score: Tensor, sigma: Tensor) -> Tensor:
    return -sigma * score
