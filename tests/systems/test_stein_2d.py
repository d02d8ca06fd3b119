"""The generator gradients of systems.stein_2d (score-function and pathwise forms of Ψ): they match
finite differences of the expanded divergence (UNI_INSTRUCT.md §1.3's table) for four f, and through
the Guidance turn they stay aligned with the truth when the fake score lags (κ × the gradient for
forward KL)."""

import math

import pytest
import torch

from systems.stein_2d import ESTIMATORS, score_function_loss, stein_psi
from ui3d.diffusion import Noise
from ui3d.divergence import DIVERGENCES
from ui3d.guidance import Guidance, GuidanceConfig
from ui3d.guidance.fake.base import FakePrediction
from ui3d.teachers.exact import GaussianMixture
from ui3d.teachers.guided import MixtureTeacher

F64 = torch.float64
M_P, V_P, MU, S, SIGMA = 0.7, 1.3, -0.4, 1.4, 0.8
VAR_P, VAR_Q = V_P + SIGMA**2, S**2 + SIGMA**2

# UNI_INSTRUCT.md §1.3: finite differences of E_q[h(r)·(s_p − s_q)²] in (μ, s), 1-D, σ = 0.8
FINITE_DIFFERENCES = {"fkl": (-0.3254, -0.1752), "rkl": (-0.5845, 0.3298), "js": (-0.1576, -0.0356),
                      "chi2": (-0.904, -0.897)}


def _log_normal(x, mean, var):
    return -0.5 * (x - mean) ** 2 / var - 0.5 * math.log(2 * math.pi * var)


@pytest.mark.parametrize("form", ["score_function", "pathwise"])
@pytest.mark.parametrize("name", sorted(FINITE_DIFFERENCES))
def test_both_forms_of_the_gradient_match_finite_differences(name, form):
    g = torch.Generator().manual_seed(0)
    n = 2_000_000
    z, eps = torch.randn(n, 1, generator=g, dtype=F64), torch.randn(n, 1, generator=g, dtype=F64)
    theta = torch.tensor([MU, S], dtype=F64, requires_grad=True)
    x_t = theta[0] + theta[1] * z + SIGMA * eps
    x = x_t.detach() if form == "score_function" else x_t  # the pathwise form differentiates Ψ(x_t)
    s_p, s_q = -(x - M_P) / VAR_P, -(x - MU) / VAR_Q  # with a fixed q: Ψ is q's first variation, held
    r = (_log_normal(x, M_P, VAR_P) - _log_normal(x, MU, VAR_Q))[:, 0].exp()
    div_y = torch.full((n,), 1 / VAR_Q - 1 / VAR_P, dtype=F64)
    psi = stein_psi(DIVERGENCES[name], r, s_p - s_q, div_y, s_p)
    if form == "score_function":
        score_function_loss(psi, eps, torch.full((n,), SIGMA, dtype=F64), x_t).mean().backward()
    else:
        psi.mean().backward()
    assert theta.grad.tolist() == pytest.approx(FINITE_DIFFERENCES[name], abs=0.02 + 0.02 * abs(FINITE_DIFFERENCES[name][1]))


class _LaggedFake:
    """s_f = (1−κ)·s_p + κ·s_q of 2-D isotropic Gaussians, with the exact log-ratio as its logit."""

    def __init__(self, kappa: float):
        self.kappa = kappa

    def predict(self, x_t, level, cond=None, with_logit=True):
        s_p, s_q = -(x_t - M_P) / VAR_P, -(x_t - MU) / VAR_Q
        s_f = (1 - self.kappa) * s_p + self.kappa * s_q
        log_r = (_log_normal(x_t, M_P, VAR_P) - _log_normal(x_t, MU, VAR_Q)).sum(1)
        return FakePrediction(-SIGMA * s_f, log_r)


def _true_fkl_gradient(dims: int) -> list[float]:
    """∂/∂(μ, s) of E_{p_σ}‖s_p − s_q‖² for isotropic Gaussians, by central differences of its closed form."""
    def value(mu: float, s: float) -> float:
        var_q = s * s + SIGMA**2
        a, b = 1 / var_q - 1 / VAR_P, M_P / VAR_P - mu / var_q
        return dims * (a * a * VAR_P + (a * M_P + b) ** 2)

    h = 1e-6
    return [(value(MU + h, S) - value(MU - h, S)) / (2 * h), (value(MU, S + h) - value(MU, S - h)) / (2 * h)]


@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
@pytest.mark.parametrize("kappa", [1.0, 0.5])
def test_through_the_guidance_turn_a_lagging_fake_scales_the_forward_kl_gradient_by_kappa(kappa, estimator):
    cfg = GuidanceConfig(divergence="fkl", weighting="none", self_normalize_ratio=False, max_abs_logit=50.0)
    teacher = MixtureTeacher(GaussianMixture.create([[M_P, M_P]], [math.sqrt(V_P)], dtype=F64))
    guidance = Guidance(cfg, teacher, _LaggedFake(kappa))
    g = torch.Generator().manual_seed(1)
    n = 400_000
    z, eps = torch.randn(n, 2, generator=g, dtype=F64), torch.randn(n, 2, generator=g, dtype=F64)
    theta = torch.tensor([MU, S], dtype=F64, requires_grad=True)
    out = ESTIMATORS[estimator](guidance, theta[0] + theta[1] * z, Noise.edm(torch.full((n,), SIGMA, dtype=F64), eps))
    out.loss.backward()
    assert out.nonfinite == 0
    truth = _true_fkl_gradient(2)
    assert theta.grad.tolist() == pytest.approx([kappa * t for t in truth], abs=0.03)


@pytest.mark.parametrize("divergence", ["rkl", "fkl"])
def test_with_the_mean_abs_weight_both_forms_estimate_the_same_gradient(divergence):
    """The weight depends on the noise it is taken at; taken at the sample's own ε, the score-function
    form drifts (reverse KL's ∂/∂s measured 0.55 against the pathwise 0.19)."""
    cfg = GuidanceConfig(divergence=divergence, weighting="mean_abs", self_normalize_ratio=False, max_abs_logit=50.0)
    teacher = MixtureTeacher(GaussianMixture.create([[M_P, M_P]], [math.sqrt(V_P)], dtype=F64))
    guidance = Guidance(cfg, teacher, _LaggedFake(1.0))
    grads = {}
    for name, estimator in ESTIMATORS.items():
        g = torch.Generator().manual_seed(2)
        n = 400_000
        z, eps = torch.randn(n, 2, generator=g, dtype=F64), torch.randn(n, 2, generator=g, dtype=F64)
        theta = torch.tensor([MU, S], dtype=F64, requires_grad=True)
        estimator(guidance, theta[0] + theta[1] * z, Noise.edm(torch.full((n,), SIGMA, dtype=F64), eps)).loss.backward()
        grads[name] = theta.grad.tolist()
    assert grads["score_function"] == pytest.approx(grads["pathwise"], abs=0.015)
