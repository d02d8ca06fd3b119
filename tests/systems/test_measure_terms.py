"""`python -m systems.measure_terms --ratio`: the discriminator's log r per timestep, on renders and on
the teacher's own samples (trained-on and held-out)."""

import math

import pytest
import torch

from systems.measure_terms import ratio_by_timestep
from systems.resolve import GenerateRequest, text_to_3d_config
from systems.text_to_3d import prepare


def test_a_constant_discriminator_gives_a_constant_log_r(tmp_path):
    cfg = text_to_3d_config(GenerateRequest(prompt="a red cube", config="configs/debug/text_to_3d.yaml",
                                            overrides=("real_samples_per_view=2",)))
    job = prepare(cfg, tmp_path / "run", resume=False)
    head = job.guidance.fake.discriminator_head
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(7.0)  # beyond the clamp of 5
    rows = ratio_by_timestep(job, batches=2, timesteps=(100, 900))
    assert [r["t"] for r in rows] == [100, 900]
    for r in rows:
        assert r["std log r (renders)"] == 0.0
        assert r["mean log r (renders)"] == r["mean log r (held-out teacher samples)"] == pytest.approx(cfg.guidance.max_abs_logit)
        assert r["accuracy (renders vs held-out)"] == 0.5  # every render called real, every sample too


def test_the_term_split_adds_up_to_the_exact_and_the_lag_fitted_losses(tmp_path):
    """SIM + DI is the exact forward-KL surrogate (its Fisher part is 0) and SIM + DI_cv is exact_cv's,
    in gradient with respect to the renders."""
    from systems.measure_terms import term_losses
    from ui3d.divergence import generator_loss

    cfg = text_to_3d_config(GenerateRequest(prompt="a red cube", config="configs/debug/text_to_3d.yaml",
                                            overrides=("views_per_step=4",)))
    job = prepare(cfg, tmp_path / "run", resume=False)
    x, parts, terms, r, div, _ = term_losses(job, batch_seed=0)
    assert job.guidance.divergence.name == "fkl" and x.shape[0] == 4
    grad = lambda loss: torch.autograd.grad(loss.sum(), x, retain_graph=True)[0]  # noqa: E731
    for mode, di in (("exact", "di"), ("exact_cv", "di_cv")):
        whole = grad(generator_loss(terms, div, mode=mode, ratio=r).per_sample)
        torch.testing.assert_close(grad(parts["sim"] + parts[di]), whole, rtol=1e-4, atol=1e-6 * float(whole.abs().max()))
    assert not torch.allclose(grad(parts["di"]), grad(parts["di_cv"]))  # four views: the fit does act


def test_term_gradients_report_every_ratio_and_noise_draws_average_the_terms(tmp_path):
    """The table's numbers come out finite (the function had no test and raised NameError); the DI
    gradient averaged over 4 noise draws differs from one draw's, which repeats exactly."""
    from systems.measure_terms import term_gradients, term_losses

    cfg = text_to_3d_config(GenerateRequest(prompt="a red cube", config="configs/debug/text_to_3d.yaml",
                                            overrides=("views_per_step=4",)))
    job = prepare(cfg, tmp_path / "run", resume=False)
    row = term_gradients(job, batch_seed=0, draws=2)
    assert set(row) >= {"di/static norm", "cos(di_cv, static)", "mean <y,c>", "mean |y|^2"}
    assert all(math.isfinite(v) for v in row.values()) and row["mean |y|^2"] > 0
    # the split of the coupling against the Dirac's exact score: ⟨y,c⟩ = ⟨y_sds,c⟩ − ‖c‖², and an untrained
    # fake (a copy of the teacher without CFG) is nowhere near the Dirac: ‖c‖² > 0
    assert row["mean <y,c>"] == pytest.approx(row["mean <y_sds,c>"] - row["mean |c|^2"], rel=1e-4)
    assert row["mean |c|^2"] > 0
    def di_gradient(draws: int) -> torch.Tensor:  # the DI part's value is 0 by construction; its gradient acts
        x, parts = term_losses(job, batch_seed=0, draws=draws)[:2]
        return torch.autograd.grad(parts["di"].sum(), x)[0]

    one = di_gradient(1)
    torch.testing.assert_close(di_gradient(1), one)  # the first draw is the same noise: K = 1 is repeatable
    assert not torch.allclose(di_gradient(4), one, rtol=1e-3)  # three more draws change the average


def test_settling_trains_the_fake_score_on_the_frozen_scene(tmp_path):
    from systems.measure_terms import settle_fake

    cfg = text_to_3d_config(GenerateRequest(prompt="a red cube", config="configs/debug/text_to_3d.yaml"))
    job = prepare(cfg, tmp_path / "run", resume=False)
    scene = {k: v.clone() for k, v in job.scene.state_dict().items()}
    fake = {n: p.detach().clone() for n, p in job.guidance.fake.named_parameters() if p.requires_grad}
    settle_fake(job, 2)
    assert all(torch.equal(v, job.scene.state_dict()[k]) for k, v in scene.items())
    moved = [n for n, p in job.guidance.fake.named_parameters() if p.requires_grad and not torch.equal(p, fake[n])]
    assert moved


def test_cross_fit_equals_self_coupling_for_one_fake_and_the_second_fake_is_its_own(tmp_path):
    """Across two copies of the same fake the coupling is the fake's own (β_cross = β_self exactly);
    settled on its own renders the second fake moves, while the job's fake and scene stay as they were."""
    from systems.measure_terms import cross_fit_betas, second_fake

    cfg = text_to_3d_config(GenerateRequest(prompt="a red cube", config="configs/debug/text_to_3d.yaml",
                                            overrides=("views_per_step=4",)))
    job = prepare(cfg, tmp_path / "run", resume=False)
    kept = {n: p.detach().clone() for n, p in job.guidance.fake.named_parameters()}
    same = cross_fit_betas(job, second_fake(job, 0), batch_seed=0)
    assert same["beta cross (y A, c B)"] == pytest.approx(same["beta A (self)"], rel=1e-5)
    assert same["beta B (self)"] == pytest.approx(same["beta A (self)"], rel=1e-5)
    assert same["cos(c A, c B)"] == pytest.approx(1.0) and same["|c A - c B|^2 / |c A|^2"] == 0.0
    other = second_fake(job, 2)
    assert all(torch.equal(p, kept[n]) for n, p in job.guidance.fake.named_parameters())
    assert any(not torch.equal(p, kept[n]) for n, p in other.named_parameters() if p.requires_grad)
    apart = cross_fit_betas(job, other, batch_seed=0)
    assert apart["beta A (self)"] == pytest.approx(same["beta A (self)"], rel=1e-5)
    assert apart["beta cross (y A, c B)"] != pytest.approx(apart["beta A (self)"], rel=1e-5)
    assert apart["|c A - c B|^2 / |c A|^2"] > 0


def test_the_coupling_split_separates_a_lag_toward_the_teacher_from_an_orthogonal_miss():
    """c = κ·y_sds + c⊥: the split recovers κ and ‖c⊥‖², and ⟨y, c⟩ = κ(1−κ)‖y_sds‖² − ‖c⊥‖² per sample."""
    from systems.measure_terms import coupling_split

    g = torch.Generator().manual_seed(0)
    y_sds = torch.randn(3, 4, 8, 8, generator=g)
    kappa = torch.tensor([0.3, -0.5, 1.2])
    miss = torch.randn(3, 4, 8, 8, generator=g)
    flat = lambda t: t.flatten(1)  # noqa: E731
    miss = miss - (flat(miss) * flat(y_sds)).sum(1).div(flat(y_sds).pow(2).sum(1)).view(3, 1, 1, 1) * y_sds
    c = kappa.view(3, 1, 1, 1) * y_sds + miss
    got_kappa, got_perp = coupling_split(y_sds, c)
    torch.testing.assert_close(got_kappa, kappa)
    torch.testing.assert_close(got_perp, flat(miss).pow(2).sum(1), rtol=1e-4, atol=1e-3)
    coupling = (flat(y_sds - c) * flat(c)).sum(1)
    torch.testing.assert_close(coupling, kappa * (1 - kappa) * flat(y_sds).pow(2).sum(1) - got_perp, rtol=1e-4, atol=1e-3)
    assert coupling_split(y_sds, 0.3 * y_sds)[1].abs().max() < 1e-3  # a pure lag has no orthogonal miss


def test_the_orthogonal_cosine_ignores_what_lies_along_the_sds_direction():
    from systems.measure_terms import orthogonal_cosine

    g = torch.Generator().manual_seed(1)
    y_sds, d, other = (torch.randn(2, 3, 4, 4, generator=g) for _ in range(3))
    c = 5.0 * y_sds + 0.7 * d  # a large lag along y_sds and a miss along d
    cos = orthogonal_cosine(c, y_sds, d)
    torch.testing.assert_close(cos, torch.ones(2))  # along y_sds hidden, the miss is d's own direction
    torch.testing.assert_close(orthogonal_cosine(-c, y_sds, d), -torch.ones(2))
    assert orthogonal_cosine(other, y_sds, d).abs().max() < 0.5  # an unrelated miss in 48 dimensions


def test_measured_batches_are_rendered_on_the_backgrounds_training_draws(tmp_path):
    """The term split must see what the loss sees in training: renders on random muted backgrounds
    (value at most 0.8), not the evaluation background (white: 1 in the teacher's [-1, 1])."""
    from systems.measure_terms import albedo_batch

    cfg = text_to_3d_config(GenerateRequest(prompt="a red cube", config="configs/debug/text_to_3d.yaml",
                                            overrides=("nerf.background.kind=muted",)))
    job = prepare(cfg, tmp_path / "run", resume=False)
    x = albedo_batch(job, torch.Generator().manual_seed(0))[1]
    corners = x[:, :, [0, 0, -1, -1], [0, -1, 0, -1]]  # the fresh scene is nearly empty there
    assert corners.max() < 0.7
