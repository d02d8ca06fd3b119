"""systems.gradient_share: the effective sample size, the truncated weight, the per-step reading, and
a short run end to end through the real guidance (the hook must not change the run)."""

import json
import math
import pytest
import torch

from systems.distill_2d import Distill2DConfig, run
from systems.gradient_share import VALUE_SIGMAS, above_one, divergence_values, effective_sample_size, main, off_mode, step_reading, truncated
from ui3d.divergence import get_divergence
from ui3d.guidance import GuidanceConfig
from ui3d.teachers.exact import GaussianMixture


def test_effective_sample_size_counts_the_samples_that_pull():
    assert effective_sample_size(torch.ones(8)) == pytest.approx(8)
    assert effective_sample_size(torch.tensor([5.0, 0, 0, 0])) == pytest.approx(1)
    assert effective_sample_size(torch.tensor([1.0, 1.0, 0, 0])) == pytest.approx(2)
    assert effective_sample_size(torch.zeros(4)) == 0.0


def test_truncation_caps_h_at_root_b_times_its_mean_and_leaves_the_rest():
    chi2 = get_divergence("chi2")  # h = 2r²
    r = torch.tensor([1.0, 1.0, 1.0, 10.0])  # h: 2, 2, 2, 200; mean 51.5, cap 2 × 51.5 = 103
    assert truncated(chi2).h(r).tolist() == pytest.approx([2, 2, 2, 103])
    small = torch.tensor([1.0, 1.1, 0.9, 1.0])
    assert torch.equal(truncated(chi2).h(small), chi2.h(small))
    assert truncated(chi2).h(torch.tensor(3.0)) == chi2.h(torch.tensor(3.0))  # a scalar r̄ has no batch


def test_step_reading_splits_the_gradient_between_modes_and_the_space_between():
    ring = GaussianMixture.ring()
    x = torch.cat([ring.means[:3], torch.zeros(1, 2)])  # three on their modes, one at the centre
    off = off_mode(x, ring)
    assert off.tolist() == [False, False, False, True]
    grads = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 2.0]])
    reading = step_reading(grads, off)
    assert reading["ess"] == pytest.approx(16 / 6)
    assert reading["top1_share"] == pytest.approx(0.5)
    assert reading["off_share"] == pytest.approx(0.5) and reading["off_fraction"] == 0.25
    assert reading["teacher_side_share"] is None and reading["teacher_side_fraction"] is None
    side = step_reading(grads, off, torch.tensor([True, False, False, False]))
    assert side["teacher_side_share"] == pytest.approx(0.25) and side["teacher_side_fraction"] == 0.25


def test_divergence_values_match_the_closed_forms_of_two_gaussians():
    """p = N(0, s²I) and q = one Dirac at m, both at noise σ: p_σ = N(0, aI), q_σ = N(m, bI) with
    a = s² + σ², b = σ², whose KL and χ² are closed forms (χ² finite as 2b > a)."""
    s, sigma, m = 0.3, 0.6, (0.2, -0.1)
    a, b = s * s + sigma * sigma, sigma * sigma
    kl = sum(0.5 * (a / b - 1 - math.log(a / b)) + mi * mi / (2 * b) for mi in m)
    c = (2 * b - a) / (2 * a * b)  # ∫N(x; 0, a)²/N(x; m, b) dx per dimension, by completing the square
    chi2 = math.prod(math.sqrt(2 * math.pi * b) / (2 * math.pi * a) * math.sqrt(math.pi / c)
                     * math.exp(mi * mi / (2 * b) + mi * mi / (4 * b * b * c)) for mi in m) - 1
    teacher = GaussianMixture.create([[0.0, 0.0]], [s], [1.0])
    got = divergence_values([get_divergence("fkl"), get_divergence("chi2")], teacher, torch.tensor([m]), sigma,
                            200_000, torch.Generator().manual_seed(0))
    assert got == pytest.approx([kl, chi2], rel=0.03)


@pytest.mark.parametrize("oracle", ["learned", "exact"])
def test_a_short_run_reads_every_generator_step_and_changes_nothing(tmp_path, oracle):
    overrides = ["steps=6", "warmup_steps=2", "batch=32", "oracle_samples=32", "eval_samples=200",
                 f"oracle={oracle}", "guidance.mode=by_parts", "sigma_min=0.05"]
    assert main(["--out", str(tmp_path / "share"), "--divergences", "chi2", "--seeds", "1", *overrides]) == 0
    steps = json.loads((tmp_path / "share" / "steps.json").read_text())
    assert [s["step"] for s in steps] == list(range(6))
    assert all(1 <= s["ess"] <= 32 and 1 / 32 <= s["top1_share"] <= 1 for s in steps)
    # chi2 reads a ratio (learned: its trained discriminator; exact: the oracle's), self-normalised: some r̄ > 1
    assert all(0 < s["teacher_side_fraction"] < 1 and 0 < s["teacher_side_share"] < 1 for s in steps)
    plain = run(Distill2DConfig(guidance=GuidanceConfig(divergence="chi2", mode="by_parts"), oracle=oracle, steps=6,
                                warmup_steps=2, batch=32, oracle_samples=32, eval_samples=200, sigma_min=0.05),
                GaussianMixture.ring(), tmp_path / "plain", progress=False)
    hooked = json.loads((tmp_path / "share" / "chi2_s0" / "metrics.json").read_text())
    assert hooked["energy_distance"] == pytest.approx(plain["energy_distance"], rel=1e-9)
    assert "chi2 |" in (tmp_path / "share" / "table.md").read_text()
    if oracle == "exact":  # the value reading: chi2 measured on its own run, from 50 and 200 samples
        assert main(["--out", str(tmp_path / "values"), "--divergences", "chi2,fkl", "--seeds", "1", "--values", "50",
                     *overrides]) == 0
        values = json.loads((tmp_path / "values" / "results.json").read_text())[0]["values"]
        assert [(v["measured"], v["q_samples"]) for v in values] == [("chi2", 50), ("fkl", 50), ("chi2", 200), ("fkl", 200)]
        assert all(len(v["values"]) == len(VALUE_SIGMAS) and min(v["values"]) > 0 for v in values)
        assert (tmp_path / "values" / "values.md").read_text().count("\n") == 2 + 2 * 4


def test_truncation_spreads_the_first_step_and_bad_input_is_one_line(tmp_path, capsys):
    """The first generator step sees the same generator with and without truncation: capping the
    largest weights must raise its effective sample size (exact oracle: r̄ is far from 1)."""
    overrides = ["steps=2", "warmup_steps=0", "batch=32", "oracle_samples=32", "eval_samples=200",
                 "oracle=exact", "guidance.mode=by_parts", "sigma_min=0.05"]
    first = {}
    for name, flag in (("plain", []), ("truncated", ["--truncate"])):
        assert main(["--out", str(tmp_path / name), "--divergences", "chi2", "--seeds", "1", *flag, *overrides]) == 0
        first[name] = json.loads((tmp_path / name / "steps.json").read_text())[0]["ess"]
    assert first["truncated"] > first["plain"] * 1.02
    assert main(["--out", str(tmp_path / "x"), "--divergences", "chi3"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_above_one_changes_the_weight_only_where_the_teacher_outweighs_the_generator():
    soft, rkl = get_divergence("softened_rkl"), get_divergence("rkl")  # h = 1/(r+1) and 1
    r = torch.tensor([0.25, 1.0, 3.0, 9.0])
    assert above_one(soft, "hold").h(r).tolist() == pytest.approx([0.8, 0.5, 0.5, 0.5])
    assert above_one(rkl, "fade").h(r).tolist() == pytest.approx([1, 1, 0.5, 0.2])  # softened's fall, ×2
    assert above_one(soft, "as_is") is soft
    with pytest.raises(ValueError, match="expected one of as_is, hold, fade"):
        above_one(soft, "flat")


def test_above_one_with_a_ratio_free_divergence_reads_the_exact_ratio(tmp_path, capsys):
    """Reverse KL with its weight faded where r̄ > 1 must train differently from reverse KL as is
    (the exact oracle's ratio is read); with learned estimators it is refused before any training."""
    overrides = ["steps=3", "warmup_steps=0", "batch=32", "oracle_samples=32", "eval_samples=200",
                 "guidance.mode=by_parts", "sigma_min=0.05"]
    ends = {}
    for above in ("as_is", "fade"):
        out = tmp_path / above
        assert main(["--out", str(out), "--divergences", "rkl", "--seeds", "1", "--above-one", above,
                     "oracle=exact", *overrides]) == 0
        ends[above] = json.loads((out / "rkl_s0" / "metrics.json").read_text())["energy_distance"]
        steps = json.loads((out / "steps.json").read_text())  # the exact oracle's ratio is read for the reading too
        assert all(0 < s["teacher_side_fraction"] < 1 for s in steps)
    assert ends["fade"] != pytest.approx(ends["as_is"], rel=1e-6)
    plain = run(Distill2DConfig(guidance=GuidanceConfig(divergence="rkl", mode="by_parts"), oracle="exact", steps=3,
                                warmup_steps=0, batch=32, oracle_samples=32, eval_samples=200, sigma_min=0.05),
                GaussianMixture.ring(), tmp_path / "plain", progress=False)
    assert ends["as_is"] == pytest.approx(plain["energy_distance"], rel=1e-9)  # reading the ratio changes nothing
    assert main(["--out", str(tmp_path / "x"), "--divergences", "rkl", "--above-one", "fade", *overrides]) == 2
    assert "needs oracle=exact" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "x"), "--divergences", "rkl", "--above-one", "flat", *overrides]) == 2
    assert "--above-one must be one of" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
