"""Closed-form references on 1-D Gaussian mixtures, by deterministic quadrature (float64).

The oracles behind UNI_INSTRUCT.md §1.2 (Theorem A), §1.3 (finite differences of D_f^w) and §6.2.
Noise is variance-exploding (x_σ = x_0 + σ·ε), so a component N(m, v) becomes N(m, v + σ²).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .table import Divergence


@dataclass(frozen=True)
class Mixture1D:
    """A 1-D Gaussian mixture: component means, variances and weights (normalised on use)."""

    means: tuple[float, ...]
    variances: tuple[float, ...]
    weights: tuple[float, ...] = (1.0,)

    @staticmethod
    def gaussian(mean: float, std: float) -> "Mixture1D":
        return Mixture1D((mean,), (std * std,), (1.0,))

    def smoothed(self, sigma: float) -> "Mixture1D":
        """The marginal after adding N(0, σ²) noise."""
        return Mixture1D(self.means, tuple(v + sigma * sigma for v in self.variances), self.weights)

    def _params(self) -> tuple[Tensor, Tensor, Tensor]:
        m = torch.tensor(self.means, dtype=torch.float64)
        v = torch.tensor(self.variances, dtype=torch.float64)
        w = torch.tensor(self.weights, dtype=torch.float64).expand_as(m)
        return m, v, w / w.sum()

    def log_prob(self, x: Tensor) -> Tensor:
        m, v, w = self._params()
        comp = -0.5 * ((x[:, None] - m) ** 2 / v + (2 * math.pi * v).log())
        return torch.logsumexp(comp + w.log(), dim=1)

    def score(self, x: Tensor) -> Tensor:
        """d/dx log p(x): responsibilities times the component scores."""
        m, v, w = self._params()
        comp = -0.5 * ((x[:, None] - m) ** 2 / v + (2 * math.pi * v).log()) + w.log()
        resp = torch.softmax(comp, dim=1)
        return (resp * (m - x[:, None]) / v).sum(1)

    def span(self, n_std: float = 14.0) -> tuple[float, float]:
        lo = min(m - n_std * math.sqrt(v) for m, v in zip(self.means, self.variances))
        hi = max(m + n_std * math.sqrt(v) for m, v in zip(self.means, self.variances))
        return lo, hi


def _grid(*mixtures: Mixture1D, n: int = 20001) -> Tensor:
    lo = min(mix.span()[0] for mix in mixtures)
    hi = max(mix.span()[1] for mix in mixtures)
    return torch.linspace(lo, hi, n, dtype=torch.float64)


def _ratio(log_p: Tensor, log_q: Tensor) -> Tensor:
    """r = p/q with log r clamped to ±700: far tails where r would under/overflow float64 carry
    q-mass below e^-100 there, so the clamp changes no digit we report but avoids 0·log 0."""
    return (log_p - log_q).clamp(-700.0, 700.0).exp()


def static_divergence(div: Divergence, p: Mixture1D, q: Mixture1D) -> float:
    """D_f(p‖q) = ∫ q·f(p/q) dx."""
    x = _grid(p, q)
    log_p, log_q = p.log_prob(x), q.log_prob(x)
    integrand = log_q.exp() * div.f(_ratio(log_p, log_q))
    return float(torch.trapezoid(integrand, x))


def fisher_integrand(div: Divergence, p: Mixture1D, q: Mixture1D, sigma: float) -> float:
    """E_{q_σ}[h(r_σ)·(s_p − s_q)²] at noise level σ: the integrand of D_f^w (Theorem A)."""
    p_s, q_s = p.smoothed(sigma), q.smoothed(sigma)
    x = _grid(p_s, q_s)
    log_p, log_q = p_s.log_prob(x), q_s.log_prob(x)
    y = p_s.score(x) - q_s.score(x)
    integrand = log_q.exp() * div.h(_ratio(log_p, log_q)) * y * y
    return float(torch.trapezoid(integrand, x))


def expanded_divergence(
    div: Divergence, p: Mixture1D, q: Mixture1D, var_range: tuple[float, float] = (1e-6, 1e5), n: int = 400
) -> float:
    """Theorem A: ∫ ½·E_{q_σ}[h(r)‖y‖²] d(σ²) over σ² in var_range (log-spaced trapezoid)."""
    log_var = torch.linspace(math.log(var_range[0]), math.log(var_range[1]), n, dtype=torch.float64)
    values = torch.tensor([fisher_integrand(div, p, q, math.exp(0.5 * lv)) for lv in log_var.tolist()],
                          dtype=torch.float64)
    # d(σ²) = σ²·d(log σ²)
    return float(torch.trapezoid(0.5 * values * log_var.exp(), log_var))
