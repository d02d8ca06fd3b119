"""Mode ``by_parts``: Theorem B's gradient as static losses weighted by Λ'/π (ui3d/divergence/by_parts.py).

Closed-form Gaussians with exact scores and ratio: the teacher N(0.7, 1.3), the student μ + s·z
(μ = −0.4, s = 1.4), at VE noise levels σ drawn from a grid. The truth is the finite-difference
gradient of the tapered expanded divergence D^{W·τ} = Σ_k π_k·w_k·τ_k·Φ(σ_k), with
Φ(σ) = E_{q_σ}[h(r)·(s_p − s_q)²] integrated on a fine grid of x. ``by_parts`` must reproduce it
for every f (it uses only static losses), ``exact`` with the weights w·τ too (the same gradient by
Theorem B), and with a lagging fake score ``by_parts`` must keep its direction where ``exact`` turns.
"""

import math

import pytest
import torch

from ui3d.divergence import (
    DIVERGENCES, NoiseTable, by_parts_multipliers, by_parts_weight, generator_loss, score_terms_from_scores, time_weight,
)
from ui3d.divergence.by_parts import TAPER_WIDTH

F64 = torch.float64
M_P, V_P, MU, S = 0.7, 1.3, -0.4, 1.4
SIGMAS = torch.logspace(math.log10(0.2), math.log10(4.0), 40, dtype=F64)
TABLE = NoiseTable.from_draws(torch.ones_like(SIGMAS), SIGMAS)


def taper(table: NoiseTable) -> torch.Tensor:
    """The objective's τ, written out from its definition: smoothstep ramps over each end's tenth of u."""
    u, width = table.u, TAPER_WIDTH * (table.u[-1] - table.u[0])
    ramp = lambda x: (x.clamp(0, 1) ** 2) * (3 - 2 * x.clamp(0, 1))  # noqa: E731
    return ramp((u - u[0]) / width) * ramp((u[-1] - u) / width)


def integrand(name: str, mu: float, s: float, sigma: float) -> float:
    """Φ(σ) = ∫ q_σ(x)·h(r(x))·(s_p − s_q)² dx on a grid of x (1-D)."""
    var_p, var_q = V_P + sigma**2, s * s + sigma**2
    x = torch.linspace(-30, 30, 200_001, dtype=F64)
    log_p = -0.5 * (x - M_P) ** 2 / var_p - 0.5 * math.log(2 * math.pi * var_p)
    log_q = -0.5 * (x - mu) ** 2 / var_q - 0.5 * math.log(2 * math.pi * var_q)
    y = -(x - M_P) / var_p + (x - mu) / var_q
    values = log_q.exp() * DIVERGENCES[name].h((log_p - log_q).exp()) * y * y
    return float(torch.trapezoid(values, x))


def true_gradient(name: str, weighting: str) -> tuple[float, float]:
    w = time_weight(weighting, torch.ones_like(TABLE.sigma), TABLE.sigma) * taper(TABLE)

    def objective(mu: float, s: float) -> float:
        return sum(float(p * wk) * integrand(name, mu, s, float(sg)) for p, wk, sg in zip(TABLE.prob, w, TABLE.sigma))

    h = 1e-5
    return ((objective(MU + h, S) - objective(MU - h, S)) / (2 * h),
            (objective(MU, S + h) - objective(MU, S - h)) / (2 * h))


def estimated_gradient(name: str, weighting: str, mode: str, kappa: float = 1.0, dims: int = 1,
                       n: int = 1_000_000, seed: int = 0) -> list[float]:
    """The batch mean's gradient with levels drawn from TABLE; ``kappa`` < 1 gives a lagging fake."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(0, SIGMAS.numel(), (n,), generator=g)
    sigma = SIGMAS[k][:, None]
    z, eps = torch.randn(n, dims, generator=g, dtype=F64), torch.randn(n, dims, generator=g, dtype=F64)
    theta = torch.tensor([MU, S], dtype=F64, requires_grad=True)
    x_t = theta[0] + theta[1] * z + sigma * eps
    var_p, var_q = V_P + sigma**2, S**2 + sigma**2
    s_p, s_q = -(x_t - M_P) / var_p, -(x_t - MU) / var_q
    s_f = (1 - kappa) * s_p + kappa * s_q
    log_r = (-0.5 * (x_t - M_P) ** 2 / var_p - 0.5 * var_p.log() + 0.5 * (x_t - MU) ** 2 / var_q + 0.5 * var_q.log())
    r = log_r.sum(1).detach().exp()
    terms = score_terms_from_scores(x_t, s_p, s_f, eps, sigma)
    ones = torch.ones(n, dtype=F64)
    if mode == "by_parts":
        weight = by_parts_weight(weighting, TABLE, ones, sigma[:, 0], x_t)
    else:
        weight = (time_weight(weighting, ones, sigma[:, 0]) * taper(TABLE)[k]).detach()
    generator_loss(terms, DIVERGENCES[name], mode=mode, ratio=r, weight=weight).loss.backward()
    return theta.grad.tolist()


@pytest.mark.parametrize("name", ["fkl", "rkl", "jeffreys", "js"])
def test_by_parts_is_theorem_b_gradient_for_every_f(name):
    truth = true_gradient(name, "sds")
    by_parts = estimated_gradient(name, "sds", "by_parts")
    scale = max(abs(t) for t in truth)
    assert by_parts == pytest.approx(truth, abs=0.03 * scale)


def test_exact_mode_with_the_tapered_weights_gives_the_same_gradient():
    """Theorem B's surrogate and the by-parts estimator are two estimators of one gradient."""
    truth = true_gradient("fkl", "sds")
    exact = estimated_gradient("fkl", "sds", "exact")
    by_parts = estimated_gradient("fkl", "sds", "by_parts")
    scale = max(abs(t) for t in truth)
    assert exact == pytest.approx(truth, abs=0.03 * scale)
    assert by_parts == pytest.approx(truth, abs=0.03 * scale)


def _cosine(a: list[float], b: list[float]) -> float:
    a_, b_ = torch.tensor(a), torch.tensor(b)
    return float(a_ @ b_ / (a_.norm() * b_.norm()))


def test_a_lagging_fake_scales_the_by_parts_gradient_and_turns_the_exact_one():
    """16 dimensions, a fake that has learned half of the student: ``exact``'s coupling term turns the
    gradient (measured: (+0.06, +0.09) against (−3.3, −0.95); at κ = 0.7 it keeps 5 % of its length),
    ``by_parts`` gives 0.5 × the exact-fake gradient (y shrinks by κ, nothing else moves)."""
    kwargs = dict(dims=16, n=200_000, seed=1)
    right = estimated_gradient("fkl", "sds", "by_parts", **kwargs)
    lagged = estimated_gradient("fkl", "sds", "by_parts", kappa=0.5, **kwargs)
    assert lagged == pytest.approx([0.5 * g for g in right], rel=1e-9)
    exact_right = estimated_gradient("fkl", "sds", "exact", **kwargs)
    exact_lagged = estimated_gradient("fkl", "sds", "exact", kappa=0.5, **kwargs)
    assert _cosine(exact_right, right) > 0.99  # an exact fake: both estimate one gradient
    assert _cosine(exact_lagged, right) < 0  # the lag turns exact mode


def test_multipliers_vanish_at_the_ends_and_integrate_lambda_prime():
    """Λ(ends) = 0 by the taper, so Σ π·(Λ'/π) = ∫Λ' du = 0; in the middle, for w = σ² on a log-uniform
    grid (Λ = const·w/σ² flat), the multipliers are ~0: Theorem B's gradient there is the ends'."""
    m = by_parts_multipliers(TABLE, TABLE.sigma**2)
    assert float((TABLE.prob * m).sum()) == pytest.approx(0, abs=1e-3 * float((TABLE.prob * m.abs()).sum()))
    middle = (TABLE.prob.cumsum(0) > 0.25) & (TABLE.prob.cumsum(0) < 0.75)
    assert m[middle].abs().max() < 1e-9
    # sds weight on the same grid, Λ ∝ σ: positive in the middle (lower noise pushed down harder)
    assert (by_parts_multipliers(TABLE, TABLE.sigma**3)[middle] > 0).all()


def test_noise_table_merges_equal_draws_and_finds_each_level():
    sigma = torch.tensor([0.5, 0.5, 1.0, 2.0, 2.0, 2.0], dtype=F64)
    table = NoiseTable.from_draws(torch.ones_like(sigma), sigma)
    assert table.prob.tolist() == pytest.approx([2 / 6, 1 / 6, 3 / 6])
    assert table.index(torch.ones(3, dtype=F64), torch.tensor([2.0, 0.51, 0.9], dtype=F64)).tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match="range of noise levels"):
        NoiseTable.from_draws(torch.ones(4), torch.tensor([1.0, 1.0, 2.0, 2.0]))
