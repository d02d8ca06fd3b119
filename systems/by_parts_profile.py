"""How mode ``by_parts`` reweights static mode over the noise levels of image distillation.

Per σ bin of the generator turn's snapped levels (``ui3d.guidance.levels.snapped_sid_levels``): the
share of draws, and by_parts' weight Λ'/π over static's σ²/α² (both before mean_abs's per-sample ω,
which they share), as a probability-weighted mean with its least and largest level. A ratio of 1 is
static mode; below 0 the level's static divergence is pushed up (the taper's falling end).

    python -m systems.by_parts_profile [--teacher builtin] [key=value overrides of the image config]
"""

from __future__ import annotations

import argparse
import sys

import torch

from ui3d.divergence.by_parts import NoiseTable, by_parts_multipliers
from ui3d.divergence.weighting import time_weight
from systems.base import command_exit_code

EDGES = (0.0, 0.05, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, float("inf"))


def relative_weight(table: NoiseTable, weighting: str = "mean_abs") -> torch.Tensor:
    """by_parts' multiplier over static mode's weight σ²/α², per level of ``table``."""
    multipliers = by_parts_multipliers(table, time_weight(weighting, table.alpha, table.sigma))
    return multipliers / (table.sigma / table.alpha) ** 2


def profile(table: NoiseTable, weighting: str = "mean_abs", edges=EDGES) -> list[dict]:
    """One row per non-empty σ bin [lo, hi): draws' share, mean (by probability), least and largest ratio."""
    ratio = relative_weight(table, weighting)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (table.sigma >= lo) & (table.sigma < hi)
        if inside.any():
            p = table.prob[inside]
            rows.append({"low": lo, "high": hi, "share": float(p.sum()),
                         "mean": float((ratio[inside] * p).sum() / p.sum()),
                         "least": float(ratio[inside].min()), "largest": float(ratio[inside].max())})
    return rows


def table_text(rows: list[dict]) -> str:
    lines = ["| σ | share of draws | by_parts / static (mean) | least | largest |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| [{r['low']:g}, {r['high']:g}) | {r['share']:.3f} | {r['mean']:+.2f} | "
                     f"{r['least']:+.2f} | {r['largest']:+.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from systems.image_distill import ImageDistillConfig
    from systems.resolve import resolve
    from ui3d.guidance.levels import snapped_sid_levels
    from ui3d.teachers.image import load_image_teacher

    p = argparse.ArgumentParser(prog="by_parts_profile", description=__doc__.splitlines()[0])
    p.add_argument("--teacher", default="builtin")
    p.add_argument("overrides", nargs="*", help="key=value overrides (image distillation config)")
    args = p.parse_args(argv)

    def command() -> int:
        cfg = resolve(ImageDistillConfig, None, overrides=args.overrides)
        levels = snapped_sid_levels(cfg.generator_sigma, load_image_teacher(args.teacher).schedule)
        print(table_text(profile(levels, cfg.guidance.weighting)), end="")
        return 0
    return command_exit_code("by_parts_profile", command)


if __name__ == "__main__":
    sys.exit(main())
