"""Who carries the generator's gradient in the 2-D benchmark?

At every generator step it takes the per-sample gradients g_i = ∂L/∂x_i of the guidance's loss with
respect to the generator's outputs and records, over the batch of B:

- the effective sample size (Σ‖g_i‖)² / Σ‖g_i‖² (B when every sample pulls equally, 1 when one does);
- the share of Σ‖g_i‖ held by the largest sample;
- the off-mode samples' share of Σ‖g_i‖ against their share of the batch (off-mode: farther than
  3 standard deviations from the nearest mode, as ``ui3d.metrics.mode_stats`` counts them).

With ``--truncate`` the divergence's weight h(r̄) is truncated at √B × its batch mean (truncated
importance sampling: the cap grows with B, so the gradient stays consistent) to test whether the
concentration itself is what fails.

With ``--above-one hold|fade`` the weight changes only where r̄ > 1, where the teacher outweighs the
generator (near the modes the generator lacks): ``hold`` keeps h(1) there, ``fade`` multiplies
h(r̄) by 2/(r̄ + 1) there (softened reverse KL's own fall; it leaves h at r̄ ≤ 1 and is continuous at
1). A swap test: does the weight on those samples decide whether a run spreads over the modes?

With ``--values N`` it also reads, for every trained generator, each listed divergence's own value
D_f(p_σ‖q_σ) = E_{x~p_σ}[f(r)/r] at σ in :data:`VALUE_SIGMAS`, q_σ being the Gaussian-smoothed
empirical measure of N and of 4N generator samples: is the run's end a point its divergence prefers?
(A value that moves between N and 4N samples is carried by the few places where q_σ has almost no
mass. The draws come from p_σ, so for reverse-KL-like f, whose f(r)/r is large where p_σ ≪ q_σ, the
reading is noisy at small σ.)

As a command (medians per phase of training; seeds run one after another)::

    python -m systems.gradient_share --out DIR --divergences chi2,fkl --seeds 3 [--truncate] [--above-one hold|fade]
        [--values N] [key=value overrides]

writes steps.json (one row per seed × generator step), results.json and table.md (values.md with ``--values``).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor

from systems.base import command_exit_code
from systems.bench_2d import folder_name, parse_divergences
from systems.calibrate_ratio import exact_log_ratio
from systems.distill_2d import Distill2DConfig, TrainHooks, mixture_teacher, run, sigma_levels
from ui3d.diffusion import Noise
from ui3d.divergence import Divergence, get_divergence, ratio_from_logits
from ui3d.errors import UserError
from ui3d.generator import MLPGenerator
from ui3d.guidance import GeneratorTurn, Guidance, GuidanceConfig
from ui3d.guidance.fake import EmpiricalFakeScore
from ui3d.io import atomic_write_text, write_json
from ui3d.teachers.exact import GaussianMixture

PHASES = ((0, 200), (200, 1000), (1000, None))  # generator steps: start, middle, end
VALUE_SIGMAS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
VALUE_POINTS = 4000  # draws from p_σ per value
ABOVE_ONE = ("as_is", "hold", "fade")


def effective_sample_size(norms: Tensor) -> float:
    """(Σ g)² / Σ g² over the batch of per-sample gradient norms g ≥ 0 (0 when all are 0)."""
    total, square = float(norms.sum()), float((norms * norms).sum())
    return total * total / square if square > 0 else 0.0


def truncated(div: Divergence) -> Divergence:
    """``div`` with h(r̄) capped at √B × its batch mean (B = the batch r̄ comes in)."""
    def h(r: Tensor) -> Tensor:
        value = div.h(r)
        if value.ndim == 0 or value.numel() < 2:
            return value
        return torch.minimum(value, value.mean() * math.sqrt(value.numel()))
    return replace(div, h=h)


def above_one(div: Divergence, how: str) -> Divergence:
    """``div`` with its weight h(r̄) changed only where r̄ > 1 (see :data:`ABOVE_ONE` and the module's doc)."""
    if how == "as_is":
        return div
    if how not in ABOVE_ONE:
        raise ValueError(f"expected one of {', '.join(ABOVE_ONE)}, got '{how}'")

    def h(r: Tensor) -> Tensor:
        value = div.h(r)
        changed = div.h(torch.ones_like(r)) if how == "hold" else value * 2 / (r + 1)
        return torch.where(r > 1, changed, value)
    return replace(div, h=h)


def off_mode(x: Tensor, teacher: GaussianMixture) -> Tensor:
    """[B] bool: farther than 3 standard deviations from the nearest mode."""
    distance, nearest = torch.cdist(x, teacher.means.to(x)).min(dim=1)
    return distance > 3 * teacher.stds.to(x)[nearest]


def step_reading(grads: Tensor, off: Tensor, teacher_side: Tensor | None = None) -> dict:
    """One step's figures from the per-sample gradients [B, D], the off-mode mask [B] and, where a
    ratio is read, the mask of r̄ > 1 [B] (None without one)."""
    norms = grads.norm(dim=1)
    total = float(norms.sum())

    def share(mask: Tensor | None) -> float | None:
        if mask is None:
            return None
        return float(norms[mask].sum()) / total if total > 0 else 0.0
    return {
        "ess": effective_sample_size(norms),
        "top1_share": float(norms.max()) / total if total > 0 else 0.0,
        "off_share": share(off),
        "off_fraction": float(off.float().mean()),
        "teacher_side_share": share(teacher_side),
        "teacher_side_fraction": float(teacher_side.float().mean()) if teacher_side is not None else None,
    }


def teacher_side(logit: Tensor | None, cfg: GuidanceConfig) -> Tensor | None:
    """[B] bool: r̄ > 1 (the teacher outweighs the generator) for the generator turn's logits, r̄ as the
    guidance makes it (clamped, self-normalised); None where the turn read no ratio."""
    if logit is None:
        return None
    return ratio_from_logits(logit.detach(), max_abs_logit=cfg.max_abs_logit, self_normalize=cfg.self_normalize_ratio) > 1


def divergence_values(divergences: list[Divergence], teacher: GaussianMixture, samples: Tensor, sigma: float,
                      points: int, g: torch.Generator, chunk: int = 256) -> list[float]:
    """Each D_f(p_σ‖q_σ) = E_{x~p_σ}[f(r)/r], r = p_σ/q_σ, q_σ the empirical measure of ``samples``
    smoothed by N(0, σ²) (float64; one set of draws for all divergences). log r is clamped to ±700
    (exp stays finite): a value near 1e300 reads "q_σ has no mass where p_σ draws"."""
    p = teacher.to(dtype=torch.float64)
    x = p.sample(points, g) + sigma * torch.randn(points, p.dim, generator=g, dtype=torch.float64)
    log_r = exact_log_ratio(p, samples, x, torch.full((points,), sigma, dtype=torch.float64), chunk)
    r = log_r.clamp(-700, 700).exp()
    return [float((div.f(r) / r).mean()) for div in divergences]


@dataclass
class GradientShare:
    """The training hook: the guidance's own loss, read per sample before it is returned."""

    cfg: Distill2DConfig
    teacher: GaussianMixture
    truncate: bool = False
    above: str = "as_is"  # one of ABOVE_ONE
    rows: list[dict] = field(default_factory=list)
    generator: MLPGenerator | None = None  # the run's generator, kept by ``after_step``

    def __post_init__(self) -> None:
        div = above_one(get_divergence(self.cfg.guidance.divergence), self.above)
        self.divergence = truncated(div) if self.truncate else div

    def generator_loss(self, guidance: Guidance, x_g: Tensor, noise: Noise) -> GeneratorTurn:
        guidance.divergence = self.divergence  # the exact oracle's Guidance is new at every step
        if isinstance(guidance.fake, EmpiricalFakeScore):
            # The exact oracle has a ratio for every divergence: read it (the turn returns its logit).
            # A ratio-free divergence's weight is constant, so its loss does not change.
            guidance.uses_ratio = True
        turn = guidance.generator_loss(x_g, noise, levels=sigma_levels(self.cfg, len(self.rows)))  # a row per step
        (grads,) = torch.autograd.grad(turn.loss, x_g, retain_graph=True)
        self.rows.append(step_reading(grads.detach(), off_mode(x_g.detach(), self.teacher),
                                      teacher_side(turn.logit, guidance.cfg)))
        return turn

    def after_step(self, step: int, generator: MLPGenerator, fake) -> None:
        self.generator = generator


def _median_or_none(values: list) -> float | None:
    return None if any(v is None for v in values) else statistics.median(values)


def phase_medians(rows: list[dict]) -> list[dict]:
    """Per phase of :data:`PHASES` that has rows: the median of every figure."""
    out = []
    for start, end in PHASES:
        part = rows[start:end]
        if part:
            out.append({"steps": f"{start}–{end if end is not None else len(rows)}",
                        **{k: _median_or_none([r[k] for r in part]) for k in part[0]}})
    return out


def value_rows(share: GradientShare, divergences: list[str], kde_samples: int, seed: int) -> list[dict]:
    """Each listed divergence's value at every σ of :data:`VALUE_SIGMAS`, from N and 4N samples."""
    g = torch.Generator().manual_seed(10_000 + seed)
    measured = [get_divergence(d) for d in divergences]
    rows = []
    for n in (kde_samples, 4 * kde_samples):
        with torch.no_grad():
            samples = share.generator(share.generator.sample_latent(n, g))
        by_sigma = [divergence_values(measured, share.teacher, samples, sigma, VALUE_POINTS, g) for sigma in VALUE_SIGMAS]
        rows += [{"measured": d, "q_samples": n, "values": [v[i] for v in by_sigma]} for i, d in enumerate(divergences)]
    return rows


def measure(base: Distill2DConfig, divergences: list[str], seeds: int, truncate: bool, out_dir: Path,
            kde_samples: int = 0, above: str = "as_is") -> str:
    teacher = mixture_teacher(base)
    untrained = [d for d in divergences if not replace(base.guidance, divergence=d).uses_ratio]
    if above != "as_is" and base.oracle == "learned" and untrained:
        raise UserError(f"--above-one with {', '.join(untrained)} needs oracle=exact: the learned ratio of a "
                        "divergence that does not use one is never trained")
    steps, results = [], []
    for div in divergences:
        for seed in range(seeds):
            cfg = replace(base, guidance=replace(base.guidance, divergence=div), seed=seed)
            share = GradientShare(cfg, teacher, truncate, above)
            metrics = run(cfg, teacher, out_dir / f"{folder_name(div)}_s{seed}", progress=False,
                          hooks=TrainHooks(generator_loss=share.generator_loss, after_step=share.after_step))
            steps += [{"divergence": div, "seed": seed, "step": i, **r} for i, r in enumerate(share.rows)]
            results.append({"divergence": div, "seed": seed, "modes_covered": metrics["modes_covered"],
                            "phases": phase_medians(share.rows),
                            "values": value_rows(share, divergences, kde_samples, seed) if kde_samples else []})
    write_json(out_dir / "steps.json", steps)
    write_json(out_dir / "results.json", results)
    text = table(results, base.batch, truncate, above)
    atomic_write_text(out_dir / "table.md", text)
    if kde_samples:
        values = values_table(results)
        atomic_write_text(out_dir / "values.md", values)
        text += "\n" + values
    return text


def values_table(results: list[dict]) -> str:
    """Markdown: one row per trained run × measured divergence × sample count."""
    sigmas = " | ".join(f"σ = {s:g}" for s in VALUE_SIGMAS)
    lines = [f"| trained with | seed | modes | measured | q samples | {sigmas} |",
             "|---|---|---|---|---|" + "---|" * len(VALUE_SIGMAS)]
    for r in results:
        for v in r["values"]:
            cells = " | ".join(f"{x:.3g}" for x in v["values"])
            lines.append(f"| {r['divergence']} | {r['seed']} | {r['modes_covered']} | {v['measured']} | "
                         f"{v['q_samples']} | {cells} |")
    return "\n".join(lines) + "\n"


def table(results: list[dict], batch: int, truncate: bool, above: str = "as_is") -> str:
    """Markdown: per divergence and phase, the medians over seeds (per-seed modes covered)."""
    weight = "truncated at √B × mean" if truncate else "as is"
    lines = [f"batch {batch}, h(r̄) {weight}, where r̄ > 1: {above}", "",
             "| divergence | modes covered (per seed) | steps | effective sample size | largest sample's share | "
             "off-mode: share of gradient / of batch | r̄ > 1: share of gradient / of batch |", "|---|---|---|---|---|---|---|"]
    for div in dict.fromkeys(r["divergence"] for r in results):
        rows = [r for r in results if r["divergence"] == div]
        modes = ", ".join(str(r["modes_covered"]) for r in rows)
        for i, phase in enumerate(rows[0]["phases"]):
            med = {k: _median_or_none([r["phases"][i][k] for r in rows if i < len(r["phases"])])
                   for k in ("ess", "top1_share", "off_share", "off_fraction", "teacher_side_share", "teacher_side_fraction")}
            side = ("–" if med["teacher_side_share"] is None
                    else f"{med['teacher_side_share']:.2f} / {med['teacher_side_fraction']:.2f}")
            lines.append(f"| {div} | {modes if i == 0 else ''} | {phase['steps']} | {med['ess']:.1f} | "
                         f"{med['top1_share']:.2f} | {med['off_share']:.2f} / {med['off_fraction']:.2f} | {side} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from systems.resolve import resolve

    p = argparse.ArgumentParser(prog="gradient_share", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--divergences", default="chi2,fkl")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--truncate", action="store_true", help="cap h(r̄) at √B × its batch mean")
    p.add_argument("--above-one", default="as_is", help=f"the weight where r̄ > 1: {', '.join(ABOVE_ONE)}")
    p.add_argument("--values", type=int, default=0, metavar="N",
                   help="also read each divergence's value at the end, q_σ from N and 4N generator samples")
    p.add_argument("--config", help="a YAML preset of systems.distill_2d (default: its class defaults)")
    p.add_argument("overrides", nargs="*", help="key=value overrides (Distill2DConfig)")
    args = p.parse_intermixed_args(argv)

    def command() -> int:
        names = parse_divergences(args.divergences)
        if args.above_one not in ABOVE_ONE:
            raise UserError(f"--above-one must be one of {', '.join(ABOVE_ONE)}, got '{args.above_one}'")
        if args.seeds < 1 or args.values < 0:
            raise UserError(f"--seeds must be positive and --values not negative, got {args.seeds} and {args.values}")
        base = resolve(Distill2DConfig, args.config, overrides=args.overrides)
        print(measure(base, names, args.seeds, args.truncate, Path(args.out), args.values, args.above_one), end="")
        return 0
    return command_exit_code("gradient_share", command)


if __name__ == "__main__":
    sys.exit(main())
