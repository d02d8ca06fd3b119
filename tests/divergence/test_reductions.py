"""§5 reductions (i)–(v) to float tolerance, with real (small, frozen) networks, and stop-gradients."""

import pytest
import torch
from torch import nn

from ui3d.diffusion import VPSchedule
from ui3d.divergence import (
    DIVERGENCES, denoising_loss, discriminator_loss, generator_loss, loss_weight, score_terms_from_eps,
    score_terms_from_x0,
)

torch.manual_seed(0)
B, SHAPE = 4, (3, 6, 6)


class Net(nn.Module):
    """A small frozen conv net standing in for a teacher or fake score."""

    def __init__(self, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 3, 3, padding=1)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3
            p.requires_grad_(False)
        self.double()

    def forward(self, x):
        return x * 0.5 + self.conv2(torch.tanh(self.conv1(x)))


def _setup(seed=1):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(B, *SHAPE, generator=g, dtype=torch.float64).requires_grad_(True)  # generator output
    eps = torch.randn(B, *SHAPE, generator=g, dtype=torch.float64)
    t = torch.tensor([50, 300, 620, 910])
    alpha, sigma = (v.double().view(B, 1, 1, 1) for v in VPSchedule.scaled_linear().alpha_sigma(t))
    return x0, eps, alpha, sigma


def _grad(loss, x0):
    (g,) = torch.autograd.grad(loss, x0)
    return g


def test_i_static_rkl_with_sds_weight_is_vsd():
    """threestudio VSD: ∂/∂z_0 = (1−ᾱ)(ε̂_p − ε̂_q)."""
    x0, eps, alpha, sigma = _setup()
    teacher, fake = Net(10), Net(11)
    x_t = alpha * x0 + sigma * eps
    eps_p, eps_q = teacher(x_t), fake(x_t)
    w = loss_weight("sds", "static", alpha, sigma, x0)
    out = generator_loss(score_terms_from_eps(x_t, eps_p, eps_q, eps, sigma), DIVERGENCES["rkl"], mode="static", weight=w)
    expected = sigma**2 * (eps_p - eps_q).detach() / B  # the loss is a batch mean
    torch.testing.assert_close(_grad(out.loss, x0), expected, rtol=1e-10, atol=1e-12)


def test_ii_static_rkl_with_the_noise_as_fake_score_is_sds():
    """DreamFusion SDS: ∂/∂z_0 = (1−ᾱ)(ε̂_p − ε)."""
    x0, eps, alpha, sigma = _setup()
    teacher = Net(10)
    x_t = alpha * x0 + sigma * eps
    eps_p = teacher(x_t)
    w = loss_weight("sds", "static", alpha, sigma, x0)
    out = generator_loss(score_terms_from_eps(x_t, eps_p, eps, eps, sigma), DIVERGENCES["rkl"], mode="static", weight=w)
    torch.testing.assert_close(_grad(out.loss, x0), sigma**2 * (eps_p - eps).detach() / B, rtol=1e-10, atol=1e-12)


def _edm_setup():
    """EDM units (α = 1), a real generator G_θ, denoisers D(x) = x − σ·net(x)."""
    g = torch.Generator().manual_seed(3)
    gen = Net(20)
    for p in gen.parameters():
        p.requires_grad_(True)
    z = torch.randn(B, *SHAPE, generator=g, dtype=torch.float64)
    n = torch.randn(B, *SHAPE, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.05, 0.4, 2.0, 9.0], dtype=torch.float64).view(B, 1, 1, 1)
    teacher, fake = Net(10), Net(11)
    return gen, z, n, sigma, (lambda x: x - sigma * teacher(x)), (lambda x: x - sigma * fake(x))


def _sid_loss(x_g, d_p, d_q, alpha_sid):
    """SiD's generator loss as released: Δᵀ((D_p − x_g) − αΔ)/mean|x_g − D_p|, summed over pixels."""
    delta = d_p - d_q
    omega = 1 / (x_g - d_p).detach().abs().flatten(1).mean(1).view(B, 1, 1, 1)
    return (omega * delta * ((d_p - x_g) - alpha_sid * delta)).flatten(1).sum(1).mean()


def _param_grads(loss, module):
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(module.parameters()))])


@pytest.mark.parametrize("mode,sid_alpha", [("exact", 0.5), ("sim_sg", 1.0)])
def test_iii_iv_reverse_kl_is_sid(mode, sid_alpha):
    """(iii) sim_sg + RKL = SiD α=1; (iv) exact + RKL = SiD α=0.5 — gradients w.r.t. the generator's weights."""
    gen, z, n, sigma, d_p, d_q = _edm_setup()
    x_g = gen(z)
    x_t = x_g + sigma * n
    dp, dq = d_p(x_t), d_q(x_t)
    one = torch.ones_like(sigma)
    w = loss_weight("mean_abs", mode, one, sigma, x_g, dp)
    out = generator_loss(score_terms_from_x0(x_t, dp, dq, x_g, one, sigma), DIVERGENCES["rkl"], mode=mode, weight=w)
    ours = _param_grads(out.loss, gen)
    x_g = gen(z)
    x_t = x_g + sigma * n
    theirs = _param_grads(_sid_loss(x_g, d_p(x_t), d_q(x_t), sid_alpha), gen)
    torch.testing.assert_close(ours, theirs, rtol=1e-8, atol=1e-10)
    assert ours.abs().max() > 1e-3  # a non-trivial gradient


def test_i_edm_static_rkl_with_mean_abs_is_diff_instruct():
    """Diff-Instruct/DMD with weight ω: ∂/∂x_g = ω·(D_q − D_p)."""
    gen, z, n, sigma, d_p, d_q = _edm_setup()
    x_g = gen(z).detach().requires_grad_(True)
    x_t = x_g + sigma * n
    dp, dq = d_p(x_t), d_q(x_t)
    one = torch.ones_like(sigma)
    w = loss_weight("mean_abs", "static", one, sigma, x_g, dp)
    out = generator_loss(score_terms_from_x0(x_t, dp, dq, x_g, one, sigma), DIVERGENCES["rkl"], mode="static", weight=w)
    omega = 1 / (x_g - dp).detach().abs().flatten(1).mean(1).view(B, 1, 1, 1)
    torch.testing.assert_close(_grad(out.loss, x_g), omega * (dq - dp).detach() / B, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["fkl", "js", "chi2", "hellinger", "jeffreys"])
def test_v_static_f_is_f_distill(name):
    """f-distill: ∂/∂z_0 = h(r)·w·α·(s_q − s_p), per sample."""
    x0, eps, alpha, sigma = _setup()
    teacher, fake = Net(10), Net(11)
    x_t = alpha * x0 + sigma * eps
    eps_p, eps_q = teacher(x_t), fake(x_t)
    r = torch.tensor([0.3, 0.9, 1.6, 4.0], dtype=torch.float64)
    w = loss_weight("sds", "static", alpha, sigma, x0)
    terms = score_terms_from_eps(x_t, eps_p, eps_q, eps, sigma)
    out = generator_loss(terms, DIVERGENCES[name], mode="static", ratio=r, weight=w)
    h = DIVERGENCES[name].h(r).view(B, 1, 1, 1)
    s_q_minus_s_p = (eps_p - eps_q).detach() / sigma
    expected = h * w.view(B, 1, 1, 1) * alpha * s_q_minus_s_p / B
    torch.testing.assert_close(_grad(out.loss, x0), expected, rtol=1e-10, atol=1e-12)


def test_generator_loss_sends_no_gradient_to_ratio_or_weight():
    """r̄ and w are detached inside the core; only x_t carries gradient to the generator."""
    gen, z, n, sigma, d_p, d_q = _edm_setup()
    x_g = gen(z)
    x_t = x_g + sigma * n
    ratio = torch.full((B,), 1.3, dtype=torch.float64, requires_grad=True)
    weight = torch.full((B,), 0.7, dtype=torch.float64, requires_grad=True)
    one = torch.ones_like(sigma)
    terms = score_terms_from_x0(x_t, d_p(x_t), d_q(x_t), x_g, one, sigma)
    generator_loss(terms, DIVERGENCES["fkl"], ratio=ratio, weight=weight).loss.backward()
    assert ratio.grad is None and weight.grad is None
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gen.parameters())


def test_fake_score_and_discriminator_losses_send_no_gradient_to_the_generator():
    gen, z, n, sigma, _, _ = _edm_setup()
    fake = Net(11)
    for p in fake.parameters():
        p.requires_grad_(True)
    x_g = gen(z).detach()  # the fake-score turn sees detached generator samples
    pred = x_g + sigma * n - sigma * fake(x_g + sigma * n)
    loss = denoising_loss(pred, x_g).loss + discriminator_loss(fake(x_g).mean((1, 2, 3)), fake(-x_g).mean((1, 2, 3))).loss
    loss.backward()
    assert all(p.grad is None for p in gen.parameters())
    assert all(p.grad is not None for p in fake.parameters())


def test_nonfinite_samples_are_counted_not_dropped():
    x = torch.zeros(3, 2, requires_grad=True)
    y = torch.tensor([[1.0, 0.0], [float("nan"), 0.0], [0.5, 0.5]])
    from ui3d.divergence import ScoreTerms
    out = generator_loss(ScoreTerms(x, y, torch.zeros(3, 2)), DIVERGENCES["fkl"])
    assert out.nonfinite == 1 and not torch.isfinite(out.loss)
