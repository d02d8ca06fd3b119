"""`ui3d bench distill2d`: every divergence × oracle × seed on the 2-D ring (or the config's
``mixture`` file), summarised as a table."""

from __future__ import annotations

import argparse
import statistics
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch

from systems.base import command_exit_code
from systems.distill_2d import Distill2DConfig, TrainHooks, mixture_teacher, run
from ui3d.divergence import DIVERGENCE_NAMES, get_divergence
from ui3d.errors import UserError
from ui3d.io import atomic_write_text, write_json
from ui3d.teachers.exact import GaussianMixture


def parse_divergences(text: str) -> list[str]:
    """A comma-separated --divergences value: names of the table, or ``alpha:<a>``; UserError names a bad one."""
    names = [d.strip() for d in text.split(",") if d.strip()]
    if not names:
        raise UserError(f"--divergences '{text}': empty; choices: {', '.join(DIVERGENCE_NAMES)}")
    for name in names:
        try:
            get_divergence(name)
        except ValueError as err:
            raise UserError(f"--divergences: {err}") from None
    return names


def folder_name(divergence: str) -> str:
    """A run folder's name part for a divergence ('alpha:-1' → 'alpha-1')."""
    return divergence.replace(":", "")


def _one(job: tuple[Distill2DConfig, GaussianMixture, str, TrainHooks]) -> dict:
    cfg, teacher, out, hooks = job
    torch.set_num_threads(1)  # one thread per process: measured faster on a shared 2-core machine
    return run(cfg, teacher, Path(out), progress=False, hooks=hooks)


def run_grid(base: Distill2DConfig, divergences, oracles, seeds: int, out_dir: Path, jobs: int = 1,
             hooks: TrainHooks = TrainHooks()) -> list[dict]:
    """One run per divergence × oracle × seed; ``hooks`` (picklable: module-level functions) reach every run."""
    # the config's mixture file, read once here so that a bad file fails before any run starts
    teacher = mixture_teacher(base)
    grid = [
        (replace(base, guidance=replace(base.guidance, divergence=d), oracle=o, seed=s), teacher,
         str(out_dir / f"{folder_name(d)}_{o}_s{s}"), hooks)
        for d in divergences for o in oracles for s in range(seeds)
    ]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(_one, grid))


def _median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def table(results: list[dict]) -> str:
    """Markdown: one row per divergence × oracle, medians over seeds (per-seed modes listed)."""
    lines = [
        "| divergence | oracle | energy distance | modes covered (per seed) | mode-weight TV | off-mode fraction | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    keys = dict.fromkeys((r["divergence"], r["oracle"]) for r in results)
    for div, oracle in keys:
        rows = [r for r in results if (r["divergence"], r["oracle"]) == (div, oracle)]
        modes = ", ".join(str(r["modes_covered"]) for r in rows)
        lines.append(
            f"| {div} | {oracle} | {_median(rows, 'energy_distance'):.3f} | {modes} | "
            f"{_median(rows, 'mode_weight_tv'):.3f} | {_median(rows, 'off_mode_fraction'):.3f} | "
            f"{_median(rows, 'wall_seconds'):.1f} |"
        )
    return "\n".join(lines) + "\n"


def bench(base: Distill2DConfig, divergences, oracles, seeds: int, out_dir: Path, jobs: int,
          hooks: TrainHooks = TrainHooks()) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    results = run_grid(base, divergences, oracles, seeds, out_dir, jobs, hooks)
    write_json(out_dir / "results.json", results)
    text = table(results)
    atomic_write_text(out_dir / "table.md", text)
    return text


def hooked_bench_main(argv: list[str] | None, prog: str, description: str,
                      add_arguments: Callable[[argparse.ArgumentParser], None],
                      hooks_for: Callable[[argparse.Namespace, Distill2DConfig], TrainHooks],
                      divergences: str = "fkl") -> int:
    """The command line of a ``ui3d bench distill2d`` variant whose runs take training hooks
    (systems.stein_2d, systems.swap_2d): --out, --divergences, --seeds, --jobs, --config and
    key=value overrides, plus the variant's own arguments; prints the table. A user error is one
    line and exit 2."""
    from systems.resolve import resolve

    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--out", required=True)
    p.add_argument("--divergences", default=divergences)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--config", help="a YAML preset of systems.distill_2d (default: its class defaults)")
    add_arguments(p)
    p.add_argument("overrides", nargs="*", help="key=value overrides (Distill2DConfig)")
    args = p.parse_intermixed_args(argv)  # key=value overrides anywhere on the line

    def command() -> int:
        names = parse_divergences(args.divergences)
        if args.seeds < 1 or args.jobs < 1:
            raise UserError(f"--seeds and --jobs must be positive, got {args.seeds} and {args.jobs}")
        base = resolve(Distill2DConfig, args.config, overrides=args.overrides)
        hooks = hooks_for(args, base)
        print(bench(base, names, [base.oracle], args.seeds, Path(args.out), args.jobs, hooks), end="")
        return 0
    return command_exit_code(prog, command)
