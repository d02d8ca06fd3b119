"""The 2-D ratio calibration: a discriminator trained on two known distributions reads as calibrated
against the exact log-ratio, a random head and a flipped one do not; the command writes its table and
refuses bad input with one line."""

import json

import pytest
import torch

from systems.calibrate_ratio import CalibrationConfig, calibrate, main, read_bins
from ui3d.diffusion import NoiseLevel
from ui3d.divergence import discriminator_loss
from ui3d.guidance.fake import MLPFakeScore
from ui3d.guidance.fake.base import FakePrediction
from ui3d.teachers.exact import GaussianMixture, log_density_ratio

SIGMA = 0.5
P = GaussianMixture.create([[1.5, 0.0], [-0.5, 1.5]], [0.5, 0.5])  # two modes: a curved log-ratio
Q = GaussianMixture.create([[-1.0, 0.5]], [0.8])
SMALL = CalibrationConfig(points=2000, q_samples=4000, bins=1)


def _trained_discriminator(steps: int = 400) -> MLPFakeScore:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    fake = MLPFakeScore(2, 64)
    opt = torch.optim.Adam(fake.discriminator.parameters(), lr=3e-3)
    level = NoiseLevel.edm(torch.full((256,), SIGMA))
    for _ in range(steps):
        x_p = P.sample(256, g) + SIGMA * torch.randn(256, 2, generator=g)
        x_q = Q.sample(256, g) + SIGMA * torch.randn(256, 2, generator=g)
        loss = discriminator_loss(fake.predict(x_p, level).logit, fake.predict(x_q, level).logit).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return fake


class _ExactHead:
    """A 'discriminator' whose logit is the closed-form log(p_σ/q_σ) times ``scale``."""

    def __init__(self, scale: float):
        self.scale = scale

    def predict(self, x_t, level, cond=None, with_logit=True):
        return FakePrediction(torch.zeros_like(x_t), self.scale * log_density_ratio(P, Q, x_t, level.sigma))


def _reading(head):
    (bin_,) = calibrate(head, P, Q.sample, SIGMA, SIGMA, SMALL, torch.Generator().manual_seed(1))
    return bin_


def test_a_discriminator_trained_on_two_known_distributions_is_calibrated_and_a_random_head_is_not():
    trained = _reading(_trained_discriminator())
    assert trained.all.n == SMALL.points
    assert 0.7 <= trained.all.slope <= 1.3 and trained.all.correlation > 0.9
    torch.manual_seed(1)
    random = _reading(MLPFakeScore(2, 64))
    assert not (0.7 <= random.all.slope <= 1.3 and random.all.correlation > 0.9)


def test_the_truth_is_p_over_q_from_the_smoothed_samples():
    exact = _reading(_ExactHead(1.0))
    assert exact.all.slope == pytest.approx(1.0, abs=0.05) and exact.all.correlation > 0.98
    assert exact.oracle_correlation > 0.98  # two sets of 4000 samples agree at σ = 0.5
    flipped = _reading(_ExactHead(-1.0))  # q/p: what a sign error would give
    assert flipped.all.slope == pytest.approx(-1.0, abs=0.05)


DEBUG = "configs/debug/distill_2d.yaml"


def test_the_command_measures_at_the_asked_steps_and_writes_its_table(tmp_path, capsys):
    out = tmp_path / "cal"
    code = main(["--out", str(out), "--seeds", "1", "--at", "0,20", "--config", DEBUG, "--points", "600",
                 "--q-samples", "1000", "--bins", "3"])
    assert code == 0, capsys.readouterr().err
    rows = json.loads((out / "calibration.json").read_text())["rows"]
    assert sorted({r["generator_steps"] for r in rows}) == [0, 20]
    assert len(rows) == 2 * 3
    assert rows[0]["low"] == pytest.approx(0.5) and rows[-1]["high"] == pytest.approx(8.0)
    table = (out / "calibration.md").read_text()
    assert table.count("\n") == 2 + 2 * 3


@pytest.mark.parametrize("args,needle", [
    (["--at", "30"], "--at 30"),
    (["--at", "x"], "--at 'x'"),
    (["oracle=exact"], "oracle=exact"),
    (["guidance.divergence=rkl"], "trains no discriminator"),
    (["--points", "10"], "--points 10"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, args, needle):
    out = tmp_path / "cal"
    code = main(["--out", str(out), "--seeds", "1", "--config", DEBUG, *args])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and err.strip().count("\n") == 0
    assert not out.exists()


def test_a_bin_whose_truth_lies_beyond_the_clamp_has_no_clamped_reading():
    sigma = torch.linspace(1.0, 2.0, 40, dtype=torch.float64)
    upper = sigma >= 2**0.5  # the log-spaced bins' edge
    truth = torch.where(upper, 9.0 + sigma, 0.1 * torch.arange(40.0, dtype=torch.float64))
    low, high = read_bins(2 * truth, truth, truth, sigma, bins=2, max_abs_log_ratio=5.0)
    assert low.clamped is not None and low.clamped.slope == pytest.approx(2.0)
    assert high.clamped is None and high.all.slope == pytest.approx(2.0)
