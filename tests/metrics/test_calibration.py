import pytest
import torch

from ui3d.metrics.calibration import calibration_by_bin, spread_by_bin


def test_calibration_reads_slope_and_correlation_per_bin():
    g = torch.Generator().manual_seed(0)
    noise = torch.cat([torch.full((2000,), 0.1), torch.full((2000,), 5.0)])
    truth = torch.randn(4000, generator=g)
    # low noise: calibrated and exact; high noise: over-confident by 2x with noise
    estimate = torch.where(noise < 1, truth, 2.0 * truth + 0.5 + 0.1 * torch.randn(4000, generator=g))
    low, high = calibration_by_bin(estimate, truth, noise, bins=2)
    assert low.n == high.n == 2000
    assert low.correlation == pytest.approx(1.0) and low.slope == pytest.approx(1.0) and low.intercept == pytest.approx(0.0, abs=1e-9)
    assert high.slope == pytest.approx(2.0, abs=0.02) and high.intercept == pytest.approx(0.5, abs=0.02)
    assert 0.98 < high.correlation < 1.0
    assert high.estimate_std == pytest.approx(2 * high.true_std, rel=0.02)


def test_calibration_checks_shapes():
    with pytest.raises(ValueError, match="must be"):
        calibration_by_bin(torch.zeros(3), torch.zeros(4), torch.ones(3))


def test_spread_by_bin():
    est = torch.tensor([-1.0, 1.0, -0.1, 0.1, 5.0])
    t = torch.tensor([10.0, 20.0, 900.0, 950.0, 2000.0])
    rows = spread_by_bin(est, t, [0, 250, 1000])
    assert [r["n"] for r in rows] == [2, 2]
    assert rows[0]["std"] == pytest.approx(2 ** 0.5) and rows[1]["std"] == pytest.approx(0.1 * 2 ** 0.5)
