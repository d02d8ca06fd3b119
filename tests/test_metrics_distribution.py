"""Distribution metrics of the 2-D mixture benchmark (UNI_INSTRUCT.md §6.3) and the PNG plot."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from ui3d.metrics.distribution import ModeStats, energy_distance, mode_stats
from ui3d.metrics.plot2d import DOT_COLOR, density_scatter_png, pixel_of

RADIUS, STD = 4.0, 0.2
RING_WEIGHTS = torch.tensor([1, 1, 1, 1, 0.5, 0.5, 0.25, 0.25], dtype=torch.float64)


def ring_means(k: int = 8, radius: float = RADIUS) -> torch.Tensor:
    angle = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
    return torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)


def sample_ring(n: int, gen: torch.Generator, weights: torch.Tensor = RING_WEIGHTS) -> torch.Tensor:
    comp = torch.multinomial(weights / weights.sum(), n, replacement=True, generator=gen)
    noise = torch.randn(n, 2, dtype=torch.float64, generator=gen)
    return ring_means()[comp] + STD * noise


def ring_log_density(x: torch.Tensor) -> torch.Tensor:
    x = x.double()
    w = RING_WEIGHTS / RING_WEIGHTS.sum()
    sq = ((x[:, None, :] - ring_means()[None]) ** 2).sum(-1)
    log_comp = -sq / (2 * STD**2) - math.log(2 * math.pi * STD**2)
    return torch.logsumexp(log_comp + w.log(), dim=1)


def expected_abs_normal(m: float, s: float) -> float:
    """E|Z| for Z ~ N(m, s^2)."""
    phi = 0.5 * (1 + math.erf((-m / s) / math.sqrt(2)))
    return s * math.sqrt(2 / math.pi) * math.exp(-(m**2) / (2 * s**2)) + m * (1 - 2 * phi)


def brute_energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    def mean_dist(a, b, exclude_diag):
        d = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
        if exclude_diag:
            return d.sum() / (len(a) * (len(a) - 1))
        return d.mean()

    return 2 * mean_dist(x, y, False) - mean_dist(x, x, True) - mean_dist(y, y, True)


# ---------------------------------------------------------------- energy distance


def test_energy_distance_same_distribution_is_near_zero():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 1, generator=gen)
    y = torch.randn(4000, 1, generator=gen)
    assert abs(energy_distance(x, y)) < 0.02


def shifted_gaussians_exact() -> float:
    # X - Y ~ N(-1, 2); X - X' ~ N(0, 2) and likewise for Y.
    return 2 * expected_abs_normal(-1.0, math.sqrt(2)) - 2 * expected_abs_normal(0.0, math.sqrt(2))


def test_energy_distance_matches_closed_form_for_shifted_gaussians():
    exact = shifted_gaussians_exact()
    assert exact == pytest.approx(0.5418, abs=1e-3)
    # Normal quantiles stand in for samples without Monte Carlo noise, so the check can be tight.
    n = 4000
    q = torch.special.ndtri((torch.arange(n, dtype=torch.float64) + 0.5) / n)[:, None]
    assert energy_distance(q, q + 1.0) == pytest.approx(exact, abs=0.005)
    assert abs(energy_distance(q, q)) < 1e-3


def test_energy_distance_shifted_gaussian_samples():
    # Random samples: the estimator's std is ~0.014 at n = 10000 (~0.022 at n = 4000).
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(10000, 1, generator=gen)
    y = torch.randn(10000, 1, generator=gen) + 1.0
    assert energy_distance(x, y) == pytest.approx(shifted_gaussians_exact(), abs=0.05)


def test_energy_distance_is_symmetric_and_chunking_is_exact():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(301, 2, generator=gen)
    y = torch.randn(257, 2, generator=gen) * 1.5 + 0.3
    ref = brute_energy_distance(x.double().numpy(), y.double().numpy())
    full = energy_distance(x, y)
    assert full == pytest.approx(ref, rel=1e-10, abs=1e-12)
    assert energy_distance(y, x) == pytest.approx(full, rel=1e-12, abs=1e-14)
    # Blocks of 100 pairs: rows of one at a time, many ragged chunks.
    assert energy_distance(x, y, max_chunk_elements=100) == pytest.approx(full, rel=1e-10, abs=1e-12)


def test_energy_distance_uses_unbiased_within_terms():
    # Two points each: U-statistics are exact pair distances, V-statistics would halve them.
    x = torch.tensor([[0.0], [2.0]])
    y = torch.tensor([[10.0], [13.0]])
    e_xy = (10 + 13 + 8 + 11) / 4
    assert energy_distance(x, y) == pytest.approx(2 * e_xy - 2.0 - 3.0)


def test_energy_distance_rejects_bad_input():
    with pytest.raises(ValueError, match="x"):
        energy_distance(torch.randn(10), torch.randn(10, 1))
    with pytest.raises(ValueError, match="dimensions differ"):
        energy_distance(torch.randn(10, 2), torch.randn(10, 3))
    with pytest.raises(ValueError, match="at least 2"):
        energy_distance(torch.randn(1, 2), torch.randn(10, 2))


def test_energy_distance_non_finite_gives_nan():
    x = torch.randn(10, 2)
    x[3, 0] = float("nan")
    assert math.isnan(energy_distance(x, torch.randn(10, 2)))


# ---------------------------------------------------------------- mode statistics


def test_mode_stats_on_exact_ring_samples():
    gen = torch.Generator().manual_seed(3)
    n = 40000
    stats = mode_stats(sample_ring(n, gen), ring_means(), torch.full((8,), STD), RING_WEIGHTS)
    assert isinstance(stats, ModeStats)
    assert stats.modes_covered == 8
    assert stats.mode_weight_tv < 0.03
    # In 2-D, |Z| > 3 std has probability exp(-9/2) ~ 0.0111 (chi-square with 2 dof).
    assert stats.off_mode_fraction == pytest.approx(math.exp(-4.5), abs=0.003)
    w = (RING_WEIGHTS / RING_WEIGHTS.sum()).tolist()
    on_total = 1 - stats.off_mode_fraction
    for got, want in zip(stats.mode_weights, w):
        assert got == pytest.approx(want * on_total, abs=0.01)
    assert sum(stats.mode_weights) == pytest.approx(on_total)
    assert len(stats.std_ratio) == 8
    for r in stats.std_ratio:
        assert r == pytest.approx(1.0, abs=0.1)
        # Truncation at 3 std shrinks the std to sqrt(E[chi2_2 | < 9] / 2) ~ 0.974 of the true one.
        assert r == pytest.approx(0.974, abs=0.03)


def test_mode_stats_two_modes_only():
    gen = torch.Generator().manual_seed(4)
    only = torch.zeros(8, dtype=torch.float64)
    only[0], only[4] = 1.0, 1.0
    samples = sample_ring(10000, gen, weights=only)
    stats = mode_stats(samples, ring_means(), torch.full((8,), STD), RING_WEIGHTS)
    assert stats.modes_covered == 2
    counts = torch.tensor(stats.mode_weights)
    assert (counts[[1, 2, 3, 5, 6, 7]] == 0).all()
    hist = counts / counts.sum()
    w = RING_WEIGHTS / RING_WEIGHTS.sum()
    assert stats.mode_weight_tv == pytest.approx(0.5 * float((hist - w).abs().sum()), abs=1e-12)
    # With exactly half on each: 0.5 * (|.5 - 2/11| + 3*(2/11) + |.5 - 1/11| + 1/11 + 2/22) = 8/11.
    assert stats.mode_weight_tv == pytest.approx(8 / 11, abs=0.02)
    assert not math.isnan(stats.std_ratio[0]) and not math.isnan(stats.std_ratio[4])
    assert all(math.isnan(stats.std_ratio[j]) for j in (1, 2, 3, 5, 6, 7))


def test_mode_stats_counts_nan_and_far_samples_off_mode():
    gen = torch.Generator().manual_seed(5)
    samples = sample_ring(9000, gen)
    bad = torch.full((600, 2), float("nan"), dtype=torch.float64)
    bad[300:, 0] = 1.0  # half the rows only partly NaN
    far = torch.zeros(400, 2, dtype=torch.float64)  # the ring centre is 20 std from every mode
    clean = mode_stats(samples, ring_means(), torch.full((8,), STD), RING_WEIGHTS)
    stats = mode_stats(torch.cat([samples, bad, far]), ring_means(), torch.full((8,), STD), RING_WEIGHTS)
    n_off_clean = clean.off_mode_fraction * 9000
    assert stats.off_mode_fraction == pytest.approx((n_off_clean + 1000) / 10000)
    # Same on-mode counts, divided by all 10000 samples: nothing was dropped from the denominator.
    for a, b in zip(stats.mode_weights, clean.mode_weights):
        assert a == pytest.approx(b * 9000 / 10000)
    assert stats.mode_weight_tv == pytest.approx(clean.mode_weight_tv)
    everything_bad = mode_stats(bad, ring_means(), torch.full((8,), STD), RING_WEIGHTS)
    assert everything_bad.off_mode_fraction == 1.0 and everything_bad.modes_covered == 0
    assert everything_bad.mode_weight_tv == 1.0


def test_mode_stats_on_mode_radius_uses_each_modes_std():
    means = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    stds = torch.tensor([0.1, 1.0])
    samples = torch.tensor([[0.25, 0.0], [0.35, 0.0], [12.9, 0.0], [13.1, 0.0]])
    stats = mode_stats(samples, means, stds, torch.tensor([1.0, 1.0]))
    assert stats.mode_weights == (0.25, 0.25)
    assert stats.off_mode_fraction == 0.5
    stats = mode_stats(samples, means, stds, torch.tensor([1.0, 1.0]), n_std=4.0)
    assert stats.mode_weights == (0.5, 0.5)


def test_mode_stats_min_fraction():
    means = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    samples = torch.cat([torch.zeros(995, 2), torch.tensor([[10.0, 0.0]] * 5)])
    stats = mode_stats(samples, means, torch.ones(2), torch.ones(2))
    assert stats.modes_covered == 1
    assert mode_stats(samples, means, torch.ones(2), torch.ones(2), min_fraction=0.001).modes_covered == 2


def test_mode_stats_rejects_bad_input():
    means = ring_means()
    with pytest.raises(ValueError, match="stds"):
        mode_stats(torch.zeros(3, 2), means, torch.zeros(8), RING_WEIGHTS)
    with pytest.raises(ValueError, match="weights"):
        mode_stats(torch.zeros(3, 2), means, torch.ones(8), torch.ones(7))
    with pytest.raises(ValueError, match="means"):
        mode_stats(torch.zeros(3, 3), means, torch.ones(8), RING_WEIGHTS)
    with pytest.raises(ValueError, match="n_std"):
        mode_stats(torch.zeros(3, 2), means, torch.ones(8), RING_WEIGHTS, n_std=0.0)


# ---------------------------------------------------------------- PNG


def test_density_scatter_png(tmp_path):
    gen = torch.Generator().manual_seed(6)
    samples = sample_ring(300, gen).float()
    extent = (-6.0, 6.0, -6.0, 6.0)
    path = tmp_path / "sub" / "ring.png"
    density_scatter_png(path, samples, ring_log_density, extent=extent, size=256)
    assert [p.name for p in path.parent.iterdir()] == ["ring.png"]  # no temp file left behind
    img = Image.open(path)
    assert img.size == (256, 256)
    arr = np.asarray(img.convert("RGB"))
    # The density is drawn: the background is far from uniform.
    dot = (arr == np.array(DOT_COLOR, dtype=np.uint8)).all(-1)
    background = arr[1:-1, 1:-1][~dot[1:-1, 1:-1]].reshape(-1, 3)
    assert len(np.unique(background, axis=0)) > 20
    # Every sample pixel carries the dot colour.
    for col, row in pixel_of(samples, extent, 256).tolist():
        assert tuple(arr[row, col]) == DOT_COLOR
    # Thin border.
    assert (arr[0] == arr[0, 0]).all() and (arr[:, -1] == arr[0, 0]).all()
    assert tuple(arr[0, 0]) not in {DOT_COLOR, (255, 255, 255)}


def test_density_scatter_png_background_and_y_axis_up(tmp_path):
    # One dot at the top mode (0, 4); density only: the ring centre is white, mode centres dark.
    extent = (-6.0, 6.0, -6.0, 6.0)
    path = tmp_path / "ring.png"
    density_scatter_png(path, torch.tensor([[0.0, 4.0]]), ring_log_density, extent=extent, size=256)
    arr = np.asarray(Image.open(path).convert("RGB")).astype(int)
    (c_mid, r_mid), (c_top, r_top), (c_right, r_right) = pixel_of(
        torch.tensor([[0.0, 0.0], [0.0, 4.0], [4.0, 0.0]]), extent, 256
    ).tolist()
    assert tuple(arr[r_mid, c_mid]) == (255, 255, 255)
    assert arr[r_right, c_right].sum() < 255 * 3 - 200
    # y points up: the dot for y = +4 is in the upper half, at the expected pixel.
    assert r_top < 128
    assert tuple(arr[r_top, c_top]) == DOT_COLOR
    dot_rows = np.nonzero((arr == np.array(DOT_COLOR)).all(-1))[0]
    assert dot_rows.max() < 128


def test_density_scatter_png_default_extent_title_and_max_points(tmp_path):
    gen = torch.Generator().manual_seed(7)
    samples = sample_ring(20000, gen)
    samples[0] = float("nan")
    path = tmp_path / "ring.png"
    density_scatter_png(path, samples, ring_log_density, size=200, max_points=50, title="fkl step 100")
    arr = np.asarray(Image.open(path).convert("RGB"))
    assert arr.shape == (200, 200, 3)
    n_dot = (arr == np.array(DOT_COLOR, dtype=np.uint8)).all(-1).sum()
    assert 9 * 10 < n_dot <= 9 * 50
    # Title text: dark pixels in the top-left strip.
    assert (arr[2:20, 2:120].sum(-1) < 150).any()


def test_density_scatter_png_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="samples"):
        density_scatter_png(tmp_path / "a.png", torch.zeros(5, 3), ring_log_density)
    with pytest.raises(ValueError, match="extent"):
        density_scatter_png(tmp_path / "a.png", torch.zeros(5, 2), ring_log_density, extent=(1, 0, 0, 1))
    with pytest.raises(ValueError, match="log_density"):
        density_scatter_png(tmp_path / "a.png", torch.zeros(5, 2), lambda x: x)
    assert not any(tmp_path.iterdir())
