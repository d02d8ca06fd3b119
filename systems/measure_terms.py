"""Which term of the exact loss does what in text-to-3D: per-term gradients with respect to x.

`python -m systems.measure_terms --prompt "a red cube" --steps 40 --batches 8`: trains a default run
(the static Uni-Instruct preset) for ``steps`` steps, then on ``batches`` fresh batches of renders splits
the exact forward-KL surrogate's gradient into its three parts: the SIM part 2h(r̄)·yᵀc (through the
networks' inputs), the Fisher part k(r̄)·‖y‖² (zero for forward KL) and the DI part
(2r̄h'⟨ȳ,c̄⟩ + r̄k'‖ȳ‖²)·⟨ȳ, x_t⟩, also with ⟨ȳ, c̄⟩ lag-corrected as mode ``exact_cv`` does; and
compares each with the static (VSD-direction) gradient −h(r̄)·⟨ȳ, x_t⟩ by norm ratio and cosine. Also the mean ⟨ȳ, c̄⟩ (0 for an exact fake score)
split as ⟨ȳ, c̄⟩ = ⟨y_sds, c̄⟩ − ‖c̄‖², with y_sds = y + c = (ε − ε̂_p)/σ the SDS direction: at one camera the
scene renders one image, the exact score of that Dirac has ε̂_q = ε (c = 0), and ‖c‖² is the fake's distance
from it. A fake that lags toward the teacher (c = κ·y_sds) gives ⟨y_sds, c⟩ = κ‖y_sds‖² > ‖c‖² = κ²‖y_sds‖²
(a positive coupling); a fake that misses the Dirac in its own direction gives ‖c‖² > ⟨y_sds, c⟩. The
table splits c per sample into κ·y_sds and a part c⊥ orthogonal to it (:func:`coupling_split`), and
gives the cosine of c⊥ with the teacher's CFG direction ε̂_c − ε̂_u off y_sds (:func:`orthogonal_cosine`):
a fake that learned the unguided teacher's answer misses the guided one along it. And the coupling if the
fake were guided too (the teacher's CFG delta added to ε̂_q, the issue's candidate): y against the unguided
teacher, c less the delta.
Prints medians over the batches as a markdown table.

`--settle N`: N more fake-score updates on fresh renders of the frozen scene before measuring (does
the coupling ⟨ȳ, c̄⟩ go to 0 as the fake score catches up?); the table adds the batch lag coefficient
β = mean⟨ȳ, c̄⟩ / mean‖ȳ‖².

`--cross-fit`: instead of the terms, a second fake score (a copy of the trained one) and N settle updates
of each on its own renders and noise (``--settle N``); then, per batch, the coupling of each fake with
itself and across them: β_cross = mean⟨ȳ_A, c̄_B⟩ / mean‖ȳ_A‖² (y from one fake, c from the other). A
fake's own random error e enters ⟨y, c⟩ as −‖e‖²/σ² (y carries +e, c carries −e); across two fakes
with independent errors that part averages out, and the lag they share stays. So β_cross above both
β_self says the negative coupling is the fakes' own error, not a lag (:func:`cross_fit_betas`).

`--ratio`: the discriminator's log r per timestep instead (:func:`ratio_by_timestep`): the 3D check
that the learned ratio acts as a ratio (its spread shrinks toward 0 as t grows).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from ui3d.diffusion import per_sample, sample_vp_noise
from ui3d.divergence import generator_loss, ratio_from_logits, score_terms_from_eps
from ui3d.divergence.losses import _grad_only, _sample_dot, lag_corrected_coupling
from ui3d.teachers.protocol import Conditioning


def albedo_batch(job, g: torch.Generator):
    """Fresh cameras, the scene's albedo renders there as teacher input (no gradient to the scene), on
    the backgrounds training draws (a random muted one per view: the distribution the fake score and
    the loss see), and the view prompts' embeddings (cond, uncond)."""
    from ui3d.cameras import sample_random_cameras

    cfg = job.cfg
    cams = sample_random_cameras(cfg.views_per_step, cfg.resolution, cfg.camera, g)
    with torch.no_grad():
        rgb = job.scene.render(cams, shading="albedo", generator=g, normals=False).rgb
    cond, uncond = job.embeddings.for_cameras(cams.azimuth_deg, cams.elevation_deg)
    return cams, job.teacher.encode(rgb.permute(0, 3, 1, 2)), cond, uncond


def noised_batch(job, batch_seed: int):
    """One fresh batch from a generator of ``batch_seed``: the renders x (teacher input, no graph), their
    noise at the preset's timesteps and the conditioning (view prompts, the fake's camera, the cameras)."""
    from ui3d.guidance.fake.lora import camera_condition

    g = torch.Generator().manual_seed(batch_seed)
    cams, x, cond, uncond = albedo_batch(job, g)
    noise = sample_vp_noise(job.teacher.schedule, job.cfg.guidance.timesteps(), x, g, job.step)
    return x.detach(), noise, Conditioning(cond, uncond, None, camera_condition(cams.c2w), cameras=cams), g


def coupling_split(y_sds: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample, c = κ·y_sds + c⊥ with c⊥ orthogonal to y_sds: returns κ and ‖c⊥‖². Then
    ⟨y, c⟩ = ⟨y_sds − c, c⟩ = κ(1 − κ)‖y_sds‖² − ‖c⊥‖²: a fake lagging toward the teacher (0 < κ < 1)
    adds a positive coupling, its miss orthogonal to the SDS direction a negative one."""
    along, norm_sq = _sample_dot(y_sds, c), _sample_dot(y_sds, y_sds)
    kappa = along / norm_sq
    return kappa, _sample_dot(c, c) - kappa * along


def orthogonal_cosine(c: torch.Tensor, y_sds: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """Per sample, the cosine between the parts of ``c`` and of ``direction`` orthogonal to ``y_sds``:
    how much of the fake's orthogonal miss c⊥ lies along a candidate direction (its square is the
    share of ‖c⊥‖² that direction explains)."""
    def off_y(v: torch.Tensor) -> torch.Tensor:
        coef = _sample_dot(v, y_sds) / _sample_dot(y_sds, y_sds)
        return v - coef.view(-1, *[1] * (v.dim() - 1)) * y_sds

    a, b = off_y(c), off_y(direction)
    return _sample_dot(a, b) / (_sample_dot(a, a) * _sample_dot(b, b)).sqrt().clamp_min(1e-30)


def term_losses(job, batch_seed: int, draws: int = 1):
    """One fresh batch of renders x (requires grad) and the exact surrogate's parts as per-sample
    losses of x: "sim", "di", "di_cv" (the DI part with the lag-corrected coupling) and "static";
    also the score terms, the ratio and the divergence of the first draw, and the mean coupling
    statistics. ``draws`` > 1: each part is averaged over that many noise draws ε at the same
    renders and timesteps (a noise-averaged estimator; its gradient is the mean of the draws')."""
    from ui3d.diffusion.noise import Noise

    cfg, guidance = job.cfg, job.guidance
    x, first, conditioning, g = noised_batch(job, batch_seed)
    x.requires_grad_(True)
    div = guidance.divergence
    parts: dict[str, torch.Tensor] = {}
    stats = {"mean <y,c>": 0.0, "mean <y,c> lag-corrected": 0.0, "mean |y|^2": 0.0, "mean |c|^2": 0.0,
             "mean <y_sds,c>": 0.0, "mean kappa": 0.0, "mean |c_perp|^2": 0.0, "mean cos(c_perp, cfg)": 0.0,
             "mean <y,c>, fake guided too": 0.0, "mean |y|^2, fake guided too": 0.0}
    conditional = guidance.teacher.unguided()  # the teacher without CFG: ε̂_cfg − ε̂_cond ∝ ε̂_c − ε̂_u
    for d in range(draws):
        noise = first if d == 0 else Noise(first.level, torch.randn(x.shape, generator=g).to(x))
        x_t = noise.apply(x)
        eps_guided = guidance.teacher.predict(x_t, noise.level, conditioning)
        eps_cond = conditional.predict(x_t, noise.level, conditioning)
        eps_p = eps_cond if guidance.cfg_apart else eps_guided  # the teacher the score terms see
        fake = guidance.fake.predict(x_t, noise.level, conditioning, with_logit=True)
        r = ratio_from_logits(fake.logit, max_abs_logit=cfg.guidance.max_abs_logit,
                              self_normalize=cfg.guidance.self_normalize_ratio).detach()
        sigma = per_sample(noise.level.sigma, x)
        t = score_terms_from_eps(x_t, eps_p, fake.eps, noise.eps, sigma)
        y_bar, c_bar = t.y.detach(), t.c.detach()
        y_sds = y_bar + c_bar
        yy, along_y = _sample_dot(y_bar, y_bar), _sample_dot(y_bar, _grad_only(t.x_t))
        coupling, corrected = _sample_dot(y_bar, c_bar), lag_corrected_coupling(y_bar, c_bar)
        cc, sds_c = _sample_dot(c_bar, c_bar), _sample_dot(y_sds, c_bar)  # ⟨y,c⟩ = ⟨y_sds,c⟩ − ‖c‖²
        kappa, c_perp_sq = coupling_split(y_sds, c_bar)
        cfg_direction = (eps_guided - eps_cond).detach()
        along_cfg = orthogonal_cosine(c_bar, y_sds, cfg_direction)
        # the fake guided too (ε̂_q + the teacher's CFG delta): y against the unguided teacher, c less the delta
        guided_fake = score_terms_from_eps(x_t, eps_cond.detach(), fake.eps.detach() + cfg_direction, noise.eps, sigma)
        guided_coupling, guided_yy = (_sample_dot(guided_fake.y, guided_fake.c),
                                      _sample_dot(guided_fake.y, guided_fake.y))

        def di_part(c: torch.Tensor) -> torch.Tensor:  # (2r̄h'·c + r̄k'‖ȳ‖²)·⟨ȳ, x_t⟩ for a given ⟨ȳ, c̄⟩
            return (div.two_r_dh(r) * c + div.r_dk(r) * yy) * along_y

        draw = {"sim": 2 * div.h(r) * _sample_dot(t.y, t.c), "di": di_part(coupling), "di_cv": di_part(corrected),
                "static": -div.h(r) * along_y}
        for name, per in draw.items():
            parts[name] = parts.get(name, 0) + per / draws
        for key, v in zip(stats, (coupling, corrected, yy, cc, sds_c, kappa, c_perp_sq, along_cfg,
                                   guided_coupling, guided_yy), strict=True):
            stats[key] += float(v.mean()) / draws
        if d == 0:
            first_terms, first_r = t, r
    return x, parts, first_terms, first_r, div, stats


def term_gradients(job, batch_seed: int, draws: int = 1) -> dict[str, float]:
    """Each part's gradient with respect to the renders against the static one: norm ratio and cosine."""
    x, parts, *_, stats = term_losses(job, batch_seed, draws)
    grads = {}
    for name, per in parts.items():
        (grad,) = torch.autograd.grad(per.sum(), x, retain_graph=True)
        grads[name] = grad.flatten()
    cos = lambda a, b: float(torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-30))  # noqa: E731
    ref = grads["static"].norm()
    return {
        "sim/static norm": float(grads["sim"].norm() / ref), "cos(sim, static)": cos(grads["sim"], grads["static"]),
        "di/static norm": float(grads["di"].norm() / ref), "cos(di, static)": cos(grads["di"], grads["static"]),
        "di_cv/static norm": float(grads["di_cv"].norm() / ref), "cos(di_cv, static)": cos(grads["di_cv"], grads["static"]),
        **stats,
    }


RATIO_TIMESTEPS = (50, 200, 350, 500, 650, 800, 950)


@torch.no_grad()
def ratio_by_timestep(job, batches: int, timesteps: tuple[int, ...] = RATIO_TIMESTEPS) -> list[dict]:
    """The discriminator's log r (its logit, clamped as the guidance clamps it) at fixed timesteps,
    on ``batches`` fresh batches of renders (the training backgrounds), on as many of the
    teacher's own samples of the same view prompts (the "real" data it trained on) and on as many
    held-out teacher samples (another seed: memorisation shows as a gap between the two). A density
    ratio p_t/q_t tends to 1 as t grows, so the spread of log r over renders must shrink toward 0
    with t; the accuracy (renders vs held-out samples) says whether the discriminator still tells
    the two apart there."""
    from dataclasses import replace

    from systems.text_to_3d import teacher_samples
    from ui3d.cameras import sample_random_cameras
    from ui3d.diffusion import NoiseLevel
    from ui3d.guidance.fake.lora import camera_condition
    from ui3d.prompt.views import view_ids

    cfg, fake, clamp = job.cfg, job.guidance.fake, job.cfg.guidance.max_abs_logit
    held_out = teacher_samples(job.teacher, replace(cfg, seed=cfg.seed + 1000))
    g = torch.Generator().manual_seed(2000)
    fake_logits = {t: [] for t in timesteps}
    real_logits = {t: [] for t in timesteps}
    held_logits = {t: [] for t in timesteps}
    for _ in range(batches):
        cams = sample_random_cameras(cfg.views_per_step, cfg.resolution, cfg.camera, g)
        x = job.teacher.encode(job.scene.render(cams, shading="albedo", generator=g).rgb.permute(0, 3, 1, 2))
        views = view_ids(cams.azimuth_deg, cams.elevation_deg)
        pick = torch.randint(0, job.x_real.shape[1], (len(views),), generator=g)
        x_real, x_held = job.x_real[views, pick], held_out[views, pick]
        cond, _ = job.embeddings.for_cameras(cams.azimuth_deg, cams.elevation_deg)
        conditioning = Conditioning(cond, camera=camera_condition(cams.c2w), cameras=cams)
        for t in timesteps:
            level = NoiseLevel.vp(job.teacher.schedule, torch.full((len(x),), t), x)
            for batch, out in ((x, fake_logits[t]), (x_real, real_logits[t]), (x_held, held_logits[t])):
                noise = torch.randn(batch.shape, generator=g)
                x_t = level.alpha.view(-1, 1, 1, 1) * batch + level.sigma.view(-1, 1, 1, 1) * noise
                logit = fake.predict(x_t, level, conditioning, with_logit=True).logit
                out.append(logit.reshape(len(batch), -1).mean(1).clamp(-clamp, clamp))
    rows = []
    for t in timesteps:
        lf, lr, lh = torch.cat(fake_logits[t]), torch.cat(real_logits[t]), torch.cat(held_logits[t])
        rows.append({"t": t, "std log r (renders)": float(lf.std()), "mean log r (renders)": float(lf.mean()),
                     "mean log r (trained-on teacher samples)": float(lr.mean()),
                     "mean log r (held-out teacher samples)": float(lh.mean()),
                     "accuracy (renders vs held-out)": float(((lf < 0).float().mean() + (lh > 0).float().mean()) / 2)})
    return rows


def settle_fake(job, turns: int) -> None:
    """``turns`` fake-score (and discriminator) updates on fresh renders of the frozen scene: does the
    coupling's bias shrink as the fake score catches up with the scene, or stay?"""
    from systems.base import NonFiniteWatch
    from systems.text_to_3d import _fake_turn

    watch = NonFiniteWatch(job.cfg.max_bad_steps)
    for _ in range(turns):
        cams, x, cond, _ = albedo_batch(job, job.generator)
        _fake_turn(job, x, cond, cams, {}, watch)


def second_fake(job, turns: int, seed: int = 7):
    """A copy of the job's fake score settled ``turns`` updates on its own renders and noise (a
    generator of ``seed``), with its own optimiser; the job's fake is left as it was."""
    import copy
    from dataclasses import replace

    fake = copy.deepcopy(job.guidance.fake)
    other = replace(job, opt_fake=torch.optim.AdamW(fake.trainable_parameters(), lr=job.cfg.fake_lr),
                    generator=torch.Generator().manual_seed(seed))
    other.guidance = copy.copy(job.guidance)
    other.guidance.fake = fake
    settle_fake(other, turns)
    return fake


@torch.no_grad()
def cross_fit_betas(job, fake_b, batch_seed: int) -> dict[str, float]:
    """On one fresh batch at one noise draw: β of the job's fake (A) with itself, of B with itself, and
    across (y from A, c from B; and y from B, c from A), each mean⟨ȳ, c̄⟩ / mean‖ȳ‖²; and how alike the two
    fakes' c are (c = −(ε̂_q − ε)/σ is each fake's distance from the exact score of a Dirac at the render:
    cosine 1 and a small relative difference say both fits miss it the same way)."""
    x, noise, conditioning, _ = noised_batch(job, batch_seed)
    x_t = noise.apply(x)
    eps_p = job.guidance.score_teacher.predict(x_t, noise.level, conditioning)
    sigma = per_sample(noise.level.sigma, x)
    a, b = (score_terms_from_eps(x_t, eps_p, f.predict(x_t, noise.level, conditioning, with_logit=False).eps,
                                 noise.eps, sigma) for f in (job.guidance.fake, fake_b))

    def beta(y_from, c_from) -> float:
        return float(_sample_dot(y_from.y, c_from.c).mean() / _sample_dot(y_from.y, y_from.y).mean())

    ca, cb = a.c.flatten(1), b.c.flatten(1)
    return {"beta A (self)": beta(a, a), "beta B (self)": beta(b, b), "beta cross (y A, c B)": beta(a, b),
            "beta cross (y B, c A)": beta(b, a),
            "cos(c A, c B)": float(torch.nn.functional.cosine_similarity(ca.flatten(), cb.flatten(), dim=0)),
            "|c A - c B|^2 / |c A|^2": float((ca - cb).square().sum() / ca.square().sum())}


def main(argv: list[str] | None = None) -> int:
    from systems.text_to_3d import TextTo3DConfig, prepare, timed_train
    from ui3d.config import load_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", default="a red cube")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--draws", type=int, default=1,
                        help="noise draws per render averaged in each term (the DI term's noise shrinks as 1/sqrt(draws) "
                             "if it is the per-sample noise of <y, c>)")
    parser.add_argument("--settle", type=int, default=0,
                        help="fake-score updates on the frozen scene before measuring (the lag's share of the bias)")
    parser.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" / "text_to_3d" / "fast.yaml"))
    parser.add_argument("--cross-fit", action="store_true",
                        help="instead of the term gradients: the coupling within and across two fake scores, each settled "
                             "--settle more updates on its own renders (is the negative coupling the fakes' own error?)")
    parser.add_argument("--ratio", action="store_true",
                        help="instead of the term gradients: the discriminator's log r per timestep (its spread must shrink with t)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    cfg = load_config(TextTo3DConfig, args.config, [f"prompt={args.prompt}", f"steps={args.steps}", "check_teacher=false",
                                                    *args.overrides])
    with tempfile.TemporaryDirectory() as tmp:
        job = prepare(cfg, Path(tmp) / "run", resume=False)
        timed_train(job, Path(tmp) / "run", progress=False)
        fake_b = second_fake(job, args.settle) if args.cross_fit else None
        settle_fake(job, args.settle)
        if args.cross_fit:
            rows = [cross_fit_betas(job, fake_b, 1000 + b) for b in range(args.batches)]
            _print_medians(f"{args.prompt} after {args.steps} steps of the preset; two fake scores, each settled "
                           f"{args.settle} more updates on its own renders; {args.batches} batches:", rows)
            return 0
        if args.ratio:
            _print_rows(f"{args.prompt}, the discriminator after {args.steps} steps of the preset, {args.batches} "
                        "batches of renders and of teacher samples per timestep:", ratio_by_timestep(job, args.batches))
            return 0
        rows = [term_gradients(job, 1000 + b, args.draws) for b in range(args.batches)]
    print(f"{args.prompt}, {cfg.guidance.divergence} after {args.steps} steps of the preset, {args.batches} batches, "
          f"{args.draws} noise draws each, the fake score settled {args.settle} more updates:")
    for r in rows:  # the batch's lag coefficient: <y,c> = β‖y‖² for a fake lagging by mixing, 0 for an exact one
        r["beta = mean <y,c> / mean |y|^2"] = r["mean <y,c>"] / r["mean |y|^2"]
        r["beta, fake guided too"] = r["mean <y,c>, fake guided too"] / r["mean |y|^2, fake guided too"]
    _print_medians("", rows)
    return 0


def _print_medians(title: str, rows: list[dict]) -> None:
    if title:
        print(title)
    print("| quantity | median | range |\n|---|---|---|")
    for key in rows[0]:
        values = [r[key] for r in rows]
        print(f"| {key} | {statistics.median(values):.4g} | {min(values):.4g} … {max(values):.4g} |")


def _print_rows(title: str, rows: list[dict]) -> None:
    print(title)
    print("| " + " | ".join(rows[0]) + " |\n" + "|---" * len(rows[0]) + "|")
    for r in rows:
        print("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in r.values()) + " |")


if __name__ == "__main__":
    sys.exit(main())
