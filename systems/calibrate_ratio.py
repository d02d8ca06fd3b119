"""Is the learned density ratio a ratio? The 2-D discriminator's logit against the exact log(p_σ/q_σ).

p is the teacher mixture; q is the generator's distribution, taken (as the exact oracle of
:mod:`systems.distill_2d` takes it) as the Gaussian-smoothed empirical mixture of many generator
samples. Points x_σ are drawn half from p_σ and half from q_σ (fresh generator samples, not the
ones behind q), at σ on a log grid over the run's [sigma_min, sigma_max]; per σ bin the estimate
is read by :func:`ui3d.metrics.calibration.calibration_by_bin` (correlation; slope of the estimate
on the truth, 1 = calibrated). Two more readings per bin:

- the same over the points with |true log r| ≤ ``max_abs_log_ratio``, the range the guidance
  keeps (it clamps the logit there);
- the oracle's own noise: the correlation of the truth with a second truth from an independent
  set of generator samples. A learned ratio cannot be judged closer to the truth than this.

As a command, it trains ``systems.distill_2d`` runs and measures at chosen generator steps::

    python -m systems.calibrate_ratio --out DIR --seeds 3 --at 0,500,2000 [key=value overrides]

and writes calibration.json (one row per seed × step × σ bin) and calibration.md (medians and
ranges over seeds).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from systems.base import command_exit_code
from systems.distill_2d import Distill2DConfig, TrainHooks, mixture_teacher, train
from ui3d.diffusion import NoiseLevel
from ui3d.errors import UserError
from ui3d.guidance.fake import MLPFakeScore
from ui3d.io import atomic_write_text, write_json
from ui3d.metrics import mode_stats
from ui3d.metrics.calibration import CalibrationBin, calibration_by_bin
from ui3d.teachers.exact import GaussianMixture, log_density_ratio

Sampler = Callable[[int, torch.Generator], Tensor]  # n points [n, D] from a distribution


@dataclass(frozen=True)
class CalibrationConfig:
    points: int = 6000  # evaluation points, half from p_σ and half from q_σ
    q_samples: int = 20000  # generator samples behind the exact q_σ (each of the two oracles)
    bins: int = 6  # log-spaced σ bins
    max_abs_log_ratio: float = 5.0  # the guidance's clamp of log r (GuidanceConfig.max_abs_logit)
    chunk: int = 256  # points per exact log-density evaluation (memory: chunk × q_samples)

    def __post_init__(self) -> None:
        for name in ("points", "q_samples", "bins", "chunk"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        if self.points < 2 * 3 * self.bins:
            raise UserError(f"--points {self.points}: need at least 6 per σ bin ({6 * self.bins} for {self.bins} bins)")


@dataclass(frozen=True)
class BinReading:
    """One σ bin: the estimate against the truth, on all points and on |true log r| ≤ the clamp,
    and how well two independent oracles agree."""

    low: float
    high: float
    all: CalibrationBin
    clamped: CalibrationBin | None  # None: fewer than 3 points in the clamp's range
    oracle_correlation: float

    def as_dict(self) -> dict:
        return {"low": self.low, "high": self.high, "all": self.all.as_dict(),
                "clamped": self.clamped.as_dict() if self.clamped is not None else None,
                "oracle_correlation": self.oracle_correlation}


def sigma_grid(n: int, sigma_min: float, sigma_max: float) -> Tensor:
    """n levels evenly spaced in log σ, ends included, so every seed's bins have the same edges."""
    return torch.logspace(math.log10(sigma_min), math.log10(sigma_max), n, dtype=torch.float64).float()


def noisy_points(p: GaussianMixture, sample_q: Sampler, sigma: Tensor, g: torch.Generator) -> Tensor:
    """x_σ = x_0 + σ·ε with x_0 from p for the first half of ``sigma`` and from q for the rest."""
    n_p = sigma.shape[0] // 2
    x0 = torch.cat([p.sample(n_p, g).float(), sample_q(sigma.shape[0] - n_p, g).float()])
    return x0 + sigma[:, None] * torch.randn(x0.shape, generator=g)


def exact_log_ratio(p: GaussianMixture, q_samples: Tensor, x_t: Tensor, sigma: Tensor, chunk: int = 256) -> Tensor:
    """log(p_σ/q_σ) at x_t [N, D], q_σ the Gaussian-smoothed empirical mixture of ``q_samples``; [N], float64."""
    q = GaussianMixture.empirical(q_samples.double())
    p64 = p.to(dtype=torch.float64)
    parts = [log_density_ratio(p64, q, x_t[i:i + chunk].double(), sigma[i:i + chunk].double())
             for i in range(0, x_t.shape[0], chunk)]
    return torch.cat(parts)


def learned_log_ratio(fake: MLPFakeScore, x_t: Tensor, sigma: Tensor) -> Tensor:
    """The discriminator's logit at x_t (EDM levels, α = 1), unclamped; [N]."""
    with torch.no_grad():
        return fake.predict(x_t, NoiseLevel.edm(sigma), with_logit=True).logit.double()


def _one_bin(estimate: Tensor, truth: Tensor, sigma: Tensor) -> CalibrationBin | None:
    """The reading of one bin's points; None below 3 points (as calibration_by_bin leaves them out)."""
    if estimate.shape[0] < 3:
        return None
    (row,) = calibration_by_bin(estimate, truth, sigma, bins=1)
    return row


def read_bins(estimate: Tensor, truth: Tensor, truth_b: Tensor, sigma: Tensor, bins: int,
              max_abs_log_ratio: float) -> list[BinReading]:
    """Per log-spaced σ bin (fixed edges from the grid's ends): see :class:`BinReading`."""
    lo, hi = float(sigma.min()), float(sigma.max())
    edges = torch.logspace(math.log10(lo), math.log10(hi), bins + 1, dtype=torch.float64)
    index = torch.bucketize(sigma.double(), edges[1:-1], right=True)  # each point in one bin, the ends included
    readings = []
    for b in range(bins):
        sel = index == b
        inside = sel & (truth.abs() <= max_abs_log_ratio)
        all_ = _one_bin(estimate[sel], truth[sel], sigma[sel])
        if all_ is None:
            continue
        oracle = _one_bin(truth_b[sel], truth[sel], sigma[sel])
        readings.append(BinReading(float(edges[b]), float(edges[b + 1]), all_, _one_bin(estimate[inside], truth[inside], sigma[inside]),
                                   oracle.correlation if oracle is not None else float("nan")))
    return readings


def calibrate(fake: MLPFakeScore, p: GaussianMixture, sample_q: Sampler, sigma_min: float, sigma_max: float,
              cfg: CalibrationConfig, g: torch.Generator) -> list[BinReading]:
    """The discriminator's logit against the exact log(p_σ/q_σ), per σ bin (module docstring)."""
    sigma = sigma_grid(cfg.points, sigma_min, sigma_max)
    x_t = noisy_points(p, sample_q, sigma, g)
    q_a, q_b = sample_q(cfg.q_samples, g), sample_q(cfg.q_samples, g)
    truth = exact_log_ratio(p, q_a, x_t, sigma, cfg.chunk)
    truth_b = exact_log_ratio(p, q_b, x_t, sigma, cfg.chunk)
    return read_bins(learned_log_ratio(fake, x_t, sigma), truth, truth_b, sigma.double(), cfg.bins, cfg.max_abs_log_ratio)


# --- the command: calibration along training runs ------------------------------------------------------

def snapshot_steps(at: list[int], cfg: Distill2DConfig) -> dict[int, int]:
    """Loop step (``train``'s index, warm-up included) → generator steps done, for each of ``at``.
    0 means the end of the fake score's warm-up, before the first generator step."""
    if cfg.oracle != "learned":
        raise UserError("oracle=exact has no discriminator to calibrate; use oracle=learned")
    if not cfg.guidance.uses_ratio:
        raise UserError(f"guidance.divergence={cfg.guidance.divergence} (or guidance.ratio=none) trains no "
                        "discriminator; use one that weights by r, e.g. fkl")
    bad = [k for k in at if not 0 <= k <= cfg.steps]
    if bad:
        raise UserError(f"--at {bad[0]}: generator steps must lie in [0, steps={cfg.steps}]")
    if 0 in at and cfg.warmup_steps == 0:
        raise UserError("--at 0 is the end of the warm-up, and warmup_steps is 0; drop 0 or set warmup_steps")
    return {cfg.warmup_steps + k - 1: k for k in at}


def _generator_sampler(gen) -> Sampler:
    def sample(n: int, g: torch.Generator) -> Tensor:
        with torch.no_grad():
            return gen(gen.sample_latent(n, g))
    return sample


def calibrate_run(cfg: Distill2DConfig, teacher: GaussianMixture, at: list[int], ccfg: CalibrationConfig,
                  progress: bool = False) -> list[dict]:
    """Train one learned-oracle run; at each of ``at`` generator steps, one row per σ bin."""
    when = snapshot_steps(at, cfg)
    rows: list[dict] = []

    def after_step(step: int, gen, fake) -> None:
        if step not in when:
            return
        g = torch.Generator().manual_seed(10_000 * (cfg.seed + 1) + step)  # apart from training's draws
        sample_q = _generator_sampler(gen)
        modes = mode_stats(sample_q(ccfg.q_samples, g), teacher.means, teacher.stds, teacher.weights).modes_covered
        for reading in calibrate(fake, teacher, sample_q, cfg.sigma_min, cfg.sigma_max, ccfg, g):
            rows.append({"seed": cfg.seed, "generator_steps": when[step], "modes_covered": modes, **reading.as_dict()})

    train(cfg, teacher, progress, TrainHooks(after_step=after_step))
    return rows


def _median_range(values: list[float], fmt: str = "{:.2f}") -> str:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "–"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}, {fmt.format(max(values))}]"


def table(rows: list[dict], clamp: float) -> str:
    """Markdown: one line per generator step × σ bin, medians over seeds [min, max]."""
    lines = [
        f"| generator steps | σ bin | modes (per seed) | correlation | slope | corr., \\|log r\\| ≤ {clamp:g} "
        f"| slope, \\|log r\\| ≤ {clamp:g} | std true / learned | oracle self-corr. |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    keys = sorted({(r["generator_steps"], r["low"], r["high"]) for r in rows})
    for steps, low, high in keys:
        group = [r for r in rows if (r["generator_steps"], r["low"], r["high"]) == (steps, low, high)]
        clamped = [r["clamped"] for r in group if r["clamped"] is not None]
        modes = ", ".join(str(r["modes_covered"]) for r in group)
        stds = (f"{statistics.median(r['all']['true_std'] for r in group):.2f} / "
                f"{statistics.median(r['all']['estimate_std'] for r in group):.2f}")
        lines.append(
            f"| {steps} | {low:.3g}–{high:.3g} | {modes} | {_median_range([r['all']['correlation'] for r in group])} | "
            f"{_median_range([r['all']['slope'] for r in group])} | {_median_range([c['correlation'] for c in clamped])} | "
            f"{_median_range([c['slope'] for c in clamped])} | {stds} | "
            f"{_median_range([r['oracle_correlation'] for r in group])} |")
    return "\n".join(lines) + "\n"


def _parse_steps(text: str) -> list[int]:
    try:
        steps = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise UserError(f"--at '{text}': expected comma-separated generator steps, e.g. 0,500,2000") from None
    if not steps:
        raise UserError("--at: give at least one generator step")
    return steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output folder (calibration.json, calibration.md)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--at", default="0,500,2000", help="generator steps to measure at (0: after the warm-up)")
    p.add_argument("--config", help="a YAML preset of systems.distill_2d (default: its class defaults)")
    p.add_argument("--points", type=int, default=CalibrationConfig.points)
    p.add_argument("--q-samples", type=int, default=CalibrationConfig.q_samples)
    p.add_argument("--bins", type=int, default=CalibrationConfig.bins)
    p.add_argument("overrides", nargs="*", help="key=value overrides of the run's settings (Distill2DConfig)")
    args = p.parse_intermixed_args(argv)  # key=value overrides anywhere on the line
    return command_exit_code("calibrate_ratio", lambda: _calibrate_command(args))


def _calibrate_command(args: argparse.Namespace) -> int:
    from systems.resolve import resolve

    if args.seeds < 1:
        raise UserError(f"--seeds must be a positive integer, got {args.seeds}")
    base = resolve(Distill2DConfig, args.config, overrides=args.overrides)
    ccfg = CalibrationConfig(points=args.points, q_samples=args.q_samples, bins=args.bins,
                             max_abs_log_ratio=base.guidance.max_abs_logit)
    at = _parse_steps(args.at)
    teacher = mixture_teacher(base)
    snapshot_steps(at, base)  # refuse a run without a discriminator, or bad steps, before any training
    torch.set_num_threads(1)  # measured faster on the shared 2-core machine (bench_2d)
    rows = [row for seed in range(args.seeds) for row in calibrate_run(replace(base, seed=seed), teacher, at, ccfg)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "calibration.json", {"config": asdict(ccfg), "rows": rows})
    text = table(rows, ccfg.max_abs_log_ratio)
    atomic_write_text(out / "calibration.md", text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
