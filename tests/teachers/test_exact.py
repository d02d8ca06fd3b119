import json

import pytest
import torch

from ui3d.teachers.exact import GaussianMixture, load_mixture_json, log_density_ratio

F64 = torch.float64


def test_score_is_gradient_of_log_prob_ve_and_vp():
    mix = GaussianMixture.ring().to(dtype=F64)
    x = torch.randn(6, 2, dtype=F64, generator=torch.Generator().manual_seed(0)) * 3
    for sigma, alpha in [(0.3, 1.0), (torch.linspace(0.1, 2, 6, dtype=F64), torch.linspace(0.9, 0.4, 6, dtype=F64))]:
        xr = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(mix.log_prob(xr, sigma, alpha).sum(), xr)
        torch.testing.assert_close(mix.score(x, sigma, alpha), grad)


def test_log_prob_integrates_to_one():
    mix = GaussianMixture.ring().to(dtype=F64)
    lin = torch.linspace(-7, 7, 561, dtype=F64)
    xx, yy = torch.meshgrid(lin, lin, indexing="ij")
    dens = mix.log_prob(torch.stack([xx.flatten(), yy.flatten()], 1), sigma=0.3).exp().reshape(561, 561)
    assert float(torch.trapezoid(torch.trapezoid(dens, lin), lin)) == pytest.approx(1.0, abs=1e-4)


def test_denoise_is_posterior_mean_of_a_gaussian():
    mix = GaussianMixture.create([[1.0, -2.0]], [1.5], dtype=F64)
    x_t = torch.tensor([[0.3, 0.7]], dtype=F64)
    alpha, sigma = 0.6, 0.8
    var = alpha**2 * 1.5**2 + sigma**2
    expected = torch.tensor([[1.0, -2.0]], dtype=F64) + alpha * 1.5**2 / var * (x_t - alpha * torch.tensor([[1.0, -2.0]], dtype=F64))
    torch.testing.assert_close(mix.denoise(x_t, sigma, alpha), expected)


def test_sampling_matches_moments_and_seed():
    mix = GaussianMixture.ring()
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    x = mix.sample(50000, g())
    assert torch.equal(x, mix.sample(50000, g()))
    mean = (mix.weights[:, None] * mix.means).sum(0)
    torch.testing.assert_close(x.mean(0), mean, atol=0.05, rtol=0)


def test_empirical_mixture_and_ratio():
    pts = torch.tensor([[0.0, 0.0], [2.0, 0.0]], dtype=F64)
    emp = GaussianMixture.empirical(pts)
    x = torch.tensor([[1.0, 0.0]], dtype=F64)
    assert torch.allclose(emp.score(x, 0.5), torch.zeros(1, 2, dtype=F64), atol=1e-12)  # midpoint symmetry
    p = GaussianMixture.create([[0.0, 0.0]], [1.0], dtype=F64)
    q = GaussianMixture.create([[1.0, 0.0]], [1.0], dtype=F64)
    lr = log_density_ratio(p, q, torch.tensor([[0.0, 0.0]], dtype=F64), sigma=0.0)
    assert float(lr) == pytest.approx(0.5)  # −0/2 + 1/2


@pytest.mark.parametrize(
    "content,message",
    [
        ("not json", "is not JSON"),
        ('{"means": [[0, 0], [1, 1]], "stds": [0.1]}', "2 means, 1 stds"),
        ('{"means": [[0, 0]], "stds": [-1]}', "stds must be >= 0"),
        ('{"means": [[0, 0]], "stds": [1], "weights": [0]}', "sum to a positive"),
        ('{"means": [[0, 0]]}', "keys 'means', 'stds'"),
        ('{"means": [[0, 0]], "stds": [1], "colour": 1}', "unknown keys"),
        ('{"means": [], "stds": []}', "non-empty"),
    ],
)
def test_bad_mixture_files(tmp_path, content, message):
    path = tmp_path / "m.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_mixture_json(path)


def test_good_mixture_file(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"means": [[0, 0], [3, 0]], "stds": [0.2, 0.4], "weights": [1, 3]}))
    mix = load_mixture_json(path)
    torch.testing.assert_close(mix.weights, torch.tensor([0.25, 0.75]))
