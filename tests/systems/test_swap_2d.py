"""systems.swap_2d: one learned estimator swapped for the exact oracle's in the generator's loss."""

import json

import torch

from systems.swap_2d import SwapHooks, main
from ui3d.diffusion import Noise
from ui3d.guidance import EDMDenoisingWeight, Guidance, GuidanceConfig
from ui3d.guidance.fake import EmpiricalFakeScore, MLPFakeScore
from ui3d.teachers.exact import GaussianMixture, log_density_ratio
from ui3d.teachers.guided import MixtureTeacher

RING = GaussianMixture.ring()
CFG = GuidanceConfig(divergence="js", mode="exact", self_normalize_ratio=False, max_abs_logit=50.0)


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x_g = torch.randn(64, 2, generator=g) * 2
    noise = Noise.edm(torch.exp(torch.empty(64).uniform_(-1, 1, generator=g)), torch.randn(64, 2, generator=g))
    return x_g, noise


def _guidance(fake) -> Guidance:
    return Guidance(CFG, MixtureTeacher(RING), fake, EDMDenoisingWeight(1.0))


def test_swapping_either_estimator_of_an_exact_fake_changes_nothing():
    """A fake that is the exact oracle already: both swaps must give its loss exactly (the hook's
    exact q is the batch when no generator was seen yet)."""
    x_g, noise = _batch()
    guidance = _guidance(EmpiricalFakeScore(RING, x_g))
    expected = guidance.generator_loss(x_g, noise)
    for swap in ("ratio", "scores"):
        got = SwapHooks(swap, oracle_samples=8).generator_loss(guidance, x_g, noise)
        torch.testing.assert_close(got.loss, expected.loss)
        torch.testing.assert_close(got.logit, expected.logit)


def test_the_ratio_swap_reads_the_exact_log_ratio_and_the_scores_swap_the_learned_one():
    torch.manual_seed(0)
    learned = MLPFakeScore(2, 32)
    x_g, noise = _batch(1)
    guidance = _guidance(learned)
    x_t = noise.apply(x_g)
    exact_logit = log_density_ratio(RING, GaussianMixture.empirical(x_g), x_t, noise.level.sigma, noise.level.alpha)
    with torch.no_grad():
        learned_logit = learned.predict(x_t, noise.level, with_logit=True).logit
    ratio = SwapHooks("ratio", 8).generator_loss(guidance, x_g, noise)
    scores = SwapHooks("scores", 8).generator_loss(guidance, x_g, noise)
    torch.testing.assert_close(ratio.logit, exact_logit)
    torch.testing.assert_close(scores.logit, learned_logit)
    assert not torch.allclose(ratio.loss, guidance.generator_loss(x_g, noise).loss)


def test_a_short_swapped_bench_runs_and_refuses_the_exact_oracle(tmp_path, capsys):
    args = ["--swap", "ratio", "--divergences", "js", "--seeds", "1", "--out", str(tmp_path),
            "steps=3", "warmup_steps=2", "eval_samples=200", "batch=32", "oracle_samples=16"]
    assert main(args) == 0
    metrics = json.loads((tmp_path / "js_learned_s0" / "metrics.json").read_text())
    assert metrics["steps"] == 3 and (tmp_path / "table.md").is_file()
    assert main([*args, "oracle=exact"]) == 2
    assert "needs oracle=learned" in capsys.readouterr().err
