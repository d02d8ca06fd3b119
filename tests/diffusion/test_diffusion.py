
import numpy as np
import pytest
import torch

from ui3d.diffusion import (
    LogNormalSigma, SiDSigma, UniformTimesteps, VPSchedule, edm_loss_weight, edm_preconditioning, eps_to_score,
    eps_to_v, eps_to_x0, karras_sigma_from_t, karras_sigmas, v_to_eps, v_to_x0, x0_to_eps, x0_to_score,
)


def test_scaled_linear_schedule_matches_stable_diffusion():
    sched = VPSchedule.scaled_linear()
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2
    expected = np.cumprod(1 - betas)
    np.testing.assert_allclose(sched.alphas_cumprod.numpy(), expected, rtol=1e-5)
    assert sched.alphas_cumprod[0] == pytest.approx(0.99915, abs=1e-6)
    assert sched.alphas_cumprod[-1] == pytest.approx(0.00466, abs=1e-5)
    alpha, sigma = sched.alpha_sigma(torch.arange(1000))
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones(1000))


def test_edm_sigma_round_trip():
    sched = VPSchedule.scaled_linear()
    t = torch.tensor([0, 17, 500, 999])
    assert torch.equal(sched.timestep_for_edm_sigma(sched.edm_sigma(t)), t)


def test_conversions_are_consistent():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 5, generator=g), torch.randn(2, 5, generator=g)
    alpha, sigma = torch.tensor(0.6), torch.tensor(0.8)
    x_t = alpha * x0 + sigma * eps
    torch.testing.assert_close(eps_to_x0(x_t, eps, alpha, sigma), x0)
    torch.testing.assert_close(x0_to_eps(x_t, x0, alpha, sigma), eps)
    v = alpha * eps - sigma * x0
    torch.testing.assert_close(eps_to_v(x_t, eps, alpha, sigma), v)
    torch.testing.assert_close(v_to_eps(x_t, v, alpha, sigma), eps)
    torch.testing.assert_close(v_to_x0(x_t, v, alpha, sigma), x0)


def test_tweedie_score_of_a_gaussian():
    """x_0 ~ N(0, s²): E[x_0|x_t] = α s² x_t/(α²s² + σ²) and the score is −x_t/(α²s² + σ²)."""
    s, alpha, sigma = 1.7, torch.tensor(0.6), torch.tensor(0.8)
    x_t = torch.linspace(-3, 3, 7)
    var = alpha**2 * s**2 + sigma**2
    x0_hat = alpha * s**2 * x_t / var
    torch.testing.assert_close(x0_to_score(x_t, x0_hat, alpha, sigma), -x_t / var)
    eps_hat = x0_to_eps(x_t, x0_hat, alpha, sigma)
    torch.testing.assert_close(eps_to_score(eps_hat, sigma), -x_t / var)


def test_karras_grid_and_sid_map():
    sig = karras_sigmas(18)
    assert sig[0] == pytest.approx(80.0) and sig[-1] == pytest.approx(0.002)
    assert (sig[1:] < sig[:-1]).all()
    assert float(karras_sigma_from_t(torch.tensor(0.8))) == pytest.approx(24.41, abs=0.01)
    assert float(karras_sigma_from_t(torch.tensor(0.0))) == pytest.approx(0.002)
    with pytest.raises(ValueError):
        karras_sigmas(0)


def test_edm_preconditioning_has_unit_variance_scalings():
    sigma = torch.tensor([0.01, 0.5, 3.0, 80.0])
    pre = edm_preconditioning(sigma, 0.5)
    torch.testing.assert_close(pre.c_in**2 * (sigma**2 + 0.25), torch.ones(4))
    torch.testing.assert_close(edm_loss_weight(sigma, 0.5), 1 / pre.c_out**2)


def test_timestep_samplers_are_seeded_and_in_range():
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    uni = UniformTimesteps(0.02, 0.98, t_max_final=0.5, anneal_start=100, anneal_end=100)
    t = uni.sample(4000, 1000, g())
    assert torch.equal(t, uni.sample(4000, 1000, g()))
    assert t.min() >= 20 and t.max() <= 979 and t.max() > 960
    late = uni.sample(4000, 1000, g(), step=100)
    assert late.max() <= 499 and late.min() >= 20
    ramp = UniformTimesteps(0.02, 0.98, t_max_final=0.5, anneal_start=0, anneal_end=100)
    assert ramp.max_at(50) == pytest.approx(0.74)
    with pytest.raises(ValueError):
        UniformTimesteps(0.5, 0.4)
    log_sigma = LogNormalSigma().sample(20000, g()).log()
    assert float(log_sigma.mean()) == pytest.approx(-1.2, abs=0.03)
    assert float(log_sigma.std()) == pytest.approx(1.2, abs=0.03)
    sid = SiDSigma().sample(20000, g())
    assert sid.min() >= 0.002 and sid.max() <= 24.41 and sid.max() > 20


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
def test_a_vp_network_at_an_edm_level_gives_the_edm_denoiser(prediction):
    """A VP network asked at x = x_0 + σ·n (σ on its grid) runs at t with σ_t/α_t = σ on α_t·x; for an
    oracle network of each prediction type, ε̂ = n and x̂_0 = x_0 in EDM units."""
    from ui3d.diffusion import prediction_to_x0, snap_sigma, vp_network_eps, vp_network_x0

    sched = VPSchedule.scaled_linear()
    g = torch.Generator().manual_seed(0)
    x0, n = torch.randn(3, 2, 4, 4, generator=g), torch.randn(3, 2, 4, 4, generator=g)
    sigma = snap_sigma(sched, torch.tensor([0.1, 1.0, 10.0]))
    x = x0 + sigma.view(-1, 1, 1, 1) * n
    seen = {}

    def oracle(x_t, t, cond):
        alpha, sig = (v.view(-1, 1, 1, 1) for v in sched.alpha_sigma(t))
        seen["x_t"], seen["t"] = x_t, t
        return {"epsilon": n, "v_prediction": alpha * n - sig * x0, "sample": x0}[prediction]

    torch.testing.assert_close(vp_network_eps(oracle, sched, prediction, x, sigma, None), n, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(vp_network_x0(oracle, sched, prediction, x, sigma, None), x0, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(sched.edm_sigma(seen["t"]), sigma)
    alpha = sched.alpha_sigma(seen["t"])[0].view(-1, 1, 1, 1)
    torch.testing.assert_close(seen["x_t"], alpha * x)
    with pytest.raises(ValueError, match="unknown prediction type 'x0'"):
        prediction_to_x0("x0", x, x, alpha, alpha)


def test_noise_apply_is_the_forward_process_in_both_conventions():
    from ui3d.diffusion import ALL_TIMESTEPS, Noise, sample_vp_noise

    sched = VPSchedule.scaled_linear()
    x = torch.randn(4, 3)
    noise = sample_vp_noise(sched, ALL_TIMESTEPS, x, torch.Generator().manual_seed(0))
    alpha, sigma = sched.alpha_sigma(noise.level.t)
    torch.testing.assert_close(noise.apply(x), alpha[:, None] * x + sigma[:, None] * noise.eps)
    t_again = torch.randint(0, 1000, (4,), generator=torch.Generator().manual_seed(0))
    assert torch.equal(noise.level.t, t_again)  # the fake-score turn's t ~ U{0..T−1}, drawn as before
    edm = Noise.edm(torch.tensor([0.5, 2.0, 1.0, 3.0]), noise.eps)
    assert torch.equal(edm.apply(x), x + edm.level.sigma[:, None] * noise.eps)
