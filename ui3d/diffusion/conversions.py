"""Conversions between ε-, x0-, v-predictions and scores at x_t = α·x_0 + σ·ε, and a VP network
queried at an EDM noise level (the one place a network's output becomes ε̂ or x̂_0).

α and σ broadcast against x_t. v-prediction assumes a VP schedule (α² + σ² = 1), as diffusers does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

if TYPE_CHECKING:
    from .schedules import VPSchedule

PREDICTIONS = ("epsilon", "v_prediction", "sample")  # diffusers' prediction_type values


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


def _unknown_prediction(prediction: str) -> ValueError:
    return ValueError(f"unknown prediction type '{prediction}' (choices: {', '.join(PREDICTIONS)})")


def prediction_to_eps(prediction: str, x_t: Tensor, out: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """ε̂ from a network output of the given ``prediction`` type."""
    if prediction == "epsilon":
        return out
    if prediction == "v_prediction":
        return v_to_eps(x_t, out, alpha, sigma)
    if prediction == "sample":
        return x0_to_eps(x_t, out, alpha, sigma)
    raise _unknown_prediction(prediction)


def prediction_to_x0(prediction: str, x_t: Tensor, out: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """x̂_0 from a network output of the given ``prediction`` type."""
    if prediction == "epsilon":
        return eps_to_x0(x_t, out, alpha, sigma)
    if prediction == "v_prediction":
        return v_to_x0(x_t, out, alpha, sigma)
    if prediction == "sample":
        return out
    raise _unknown_prediction(prediction)


def _vp_forward(network: nn.Module, schedule: VPSchedule, x: Tensor, sigma: Tensor,
                cond: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A VP network ``forward(x_t, t, cond)`` at the EDM point x = x_0 + σ·n. A VP network only knows
    its own timesteps, so it runs at the step t whose σ_t/α_t is nearest σ, on the input α_t·x.
    Returns (α_t·x, output, α_t, σ_t), the last two broadcast against x."""
    t = schedule.timestep_for_edm_sigma(sigma.detach().reshape(-1).cpu()).to(x.device)
    alpha, sigma_vp = (v.to(x).view(-1, *([1] * (x.ndim - 1))) for v in schedule.alpha_sigma(t))
    x_vp = alpha * x
    return x_vp, network(x_vp, t, cond), alpha, sigma_vp


def vp_network_x0(network: nn.Module, schedule: VPSchedule, prediction: str, x: Tensor, sigma: Tensor,
                  cond: Tensor | None) -> Tensor:
    """D(x; σ) = x̂_0 of a VP network at the EDM point x = x_0 + σ·n (σ [B], on the schedule's grid)."""
    return prediction_to_x0(prediction, *_vp_forward(network, schedule, x, sigma, cond))


def vp_network_eps(network: nn.Module, schedule: VPSchedule, prediction: str, x: Tensor, sigma: Tensor,
                   cond: Tensor | None) -> Tensor:
    """ε̂ of a VP network at the EDM point x = x_0 + σ·n (the same ε in both conventions)."""
    return prediction_to_eps(prediction, *_vp_forward(network, schedule, x, sigma, cond))
