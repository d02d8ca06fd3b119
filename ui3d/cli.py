"""The `ui3d` command line. User errors print one line and exit with code 2 (DESIGN rule 5).

Subcommands import their systems lazily, so `ui3d --help` stays fast and `ui3d` never imports
`systems` at start-up.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
USER_ERROR = 2


def _check_out_dir(path: str) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out '{out}' is a file, expected a folder")
    return out


def _distill(args: argparse.Namespace) -> int:
    if args.teacher == "gmm2d" or (args.teacher is None and not args.resume):
        return _distill_2d(args)
    for flag, value in (("--mixture", args.mixture), ("--oracle", args.oracle)):
        if value is not None:
            raise ValueError(f"{flag} is for --teacher gmm2d only")
    from systems.image_distill import ImageDistillConfig, run
    from ui3d.config import load_config, parse_overrides

    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "config.yaml").is_file() or not (run_dir / "checkpoint.pt").is_file():
            raise ValueError(f"--resume '{run_dir}': not a run folder (needs config.yaml and checkpoint.pt)")
        if args.teacher is not None or args.data is not None:
            raise ValueError("--resume continues with the run's own --teacher and --data; drop them")
        if set(parse_overrides(args.overrides)) - {"steps"}:
            raise ValueError("--resume takes only --steps N or steps=N (the rest is the run's config.yaml)")
        cfg = load_config(ImageDistillConfig, run_dir / "config.yaml",
                          args.overrides + ([f"steps={args.steps}"] if args.steps is not None else []))
    else:
        if args.out is None:
            raise ValueError("--out DIR is required (or --resume RUN_DIR)")
        builtin = args.teacher == "builtin"
        preset = args.config or CONFIG_DIR / "image_distill" / ("builtin.yaml" if builtin else "cifar10.yaml")
        flags = {"teacher": args.teacher, "data": args.data, "guidance.divergence": args.divergence,
                 "guidance.mode": args.mode, "gan_weight": args.gan_weight, "steps": args.steps, "seed": args.seed,
                 "device": args.device}
        overrides = [f"{k}={v}" for k, v in flags.items() if v is not None] + args.overrides
        cfg = load_config(ImageDistillConfig, preset, overrides)
        run_dir = _check_out_dir(args.out)
    from systems.base import NonFiniteError

    try:
        metrics = run(cfg, run_dir, resume=bool(args.resume))
    except NonFiniteError as err:  # a diverged run: the checkpoint before it is kept
        print(f"ui3d distill: stopped: {err} (checkpoint and losses.csv in {run_dir})", file=sys.stderr)
        return 1
    if metrics is not None:
        score = (f"world-FID {metrics['init_world_fid']} -> {metrics['world_fid']}, object accuracy "
                 f"{metrics['object_accuracy']:.3f}" if "world_fid" in metrics else f"FID {metrics['fid']}")
        print(f"{metrics['generator_steps']} generator steps, {score}, {metrics['train_seconds']:.0f} s -> {run_dir}")
    return 0


def _distill_2d(args: argparse.Namespace) -> int:
    from systems.distill_2d import Distill2DConfig, run
    from ui3d.config import load_config
    from ui3d.teachers.exact import GaussianMixture, load_mixture_json

    for flag, value in (("--data", args.data), ("--gan-weight", args.gan_weight), ("--resume", args.resume)):
        if value is not None:
            raise ValueError(f"{flag} is for image teachers, not --teacher gmm2d")
    if args.out is None:
        raise ValueError("--out DIR is required")
    flags = {"guidance.divergence": args.divergence, "guidance.mode": args.mode, "oracle": args.oracle,
             "steps": args.steps, "seed": args.seed, "mixture": args.mixture}
    overrides = [f"{k}={v}" for k, v in flags.items() if v is not None] + args.overrides
    cfg = load_config(Distill2DConfig, args.config, overrides)
    teacher = load_mixture_json(cfg.mixture) if cfg.mixture else GaussianMixture.ring()
    out = _check_out_dir(args.out)
    metrics = run(cfg, teacher, out)
    print(f"{metrics['modes_covered']}/{metrics['n_modes']} modes, energy distance {metrics['energy_distance']:.4f}, "
          f"{metrics['wall_seconds']:.1f} s -> {out}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from systems.image_distill import sample

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"RUN_DIR '{run_dir}' is not a folder")
    path, rate = sample(run_dir, args.n, args.seed, args.prompt, Path(args.out) if args.out else None)
    print(f"{args.n} one-step samples ({rate:.1f}/s) -> {path}")
    return 0


def _add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="sample a distilled one-step generator (a `ui3d distill` run folder)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--n", type=int, default=64, help="number of samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prompt", help="built-in teacher: a caption for every sample (default: cycle the object x colour captions)")
    p.add_argument("--out", help="PNG path (default: RUN_DIR/samples_n<N>_s<seed>.png)")
    p.set_defaults(handler=_sample)


def _generate_config(args: argparse.Namespace):
    """Preset file < guidance preset < flags < key=value overrides, checked strictly."""
    import torch

    from systems.text_to_3d import TextTo3DConfig
    from ui3d.config import from_dict, load_config, merge, parse_overrides, to_dict
    from ui3d.guidance.score import guidance_preset
    from ui3d.teachers.loading import default_teacher_spec

    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: CUDA is not available on this machine; use --device cpu")
    teacher = args.teacher or default_teacher_spec()
    if args.teacher is None:
        why = "CUDA is present" if teacher == "sd" else "no CUDA: Stable Diffusion would take seconds per step"
        print(f"teacher: {teacher} ({why}; choose with --teacher)")
    preset = args.config or CONFIG_DIR / "text_to_3d" / f"{args.preset}.yaml"
    base = to_dict(load_config(TextTo3DConfig, preset,
                               defaults={"guidance": to_dict(guidance_preset(args.guidance))}))
    flags = {"prompt": args.prompt, "negative_prompt": args.negative_prompt, "teacher": teacher,
             "backend": args.backend, "steps": args.steps, "seed": args.seed, "device": args.device}
    flags = {k: v for k, v in flags.items() if v is not None}
    if args.divergence is not None:
        flags["guidance"] = {"divergence": args.divergence}
    return from_dict(TextTo3DConfig, merge(merge(base, flags), parse_overrides(args.overrides)))


def _generate(args: argparse.Namespace) -> int:
    from systems.base import run_folder
    from systems.text_to_3d import TextTo3DConfig
    from ui3d.config import load_config, parse_overrides

    if args.prompts:
        return _generate_many(args)
    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "config.yaml").is_file() or not (run_dir / "checkpoint.pt").is_file():
            raise ValueError(f"--resume '{run_dir}': not a run folder (needs config.yaml and checkpoint.pt)")
        if set(parse_overrides(args.overrides)) - {"steps"}:
            raise ValueError("--resume takes only steps=N as an override (the rest is the run's config.yaml)")
        cfg = load_config(TextTo3DConfig, run_dir / "config.yaml", args.overrides)
    else:
        if args.prompt is None:
            raise ValueError("a prompt is required, e.g. ui3d generate \"a ceramic owl\"")
        cfg = _generate_config(args)
        run_dir = _check_out_dir(args.out) if args.out else run_folder("runs", cfg.prompt, cfg.seed)
    finished, metrics = _run_generate(cfg, run_dir, resume=bool(args.resume))
    return 0 if finished else 130


def _run_generate(cfg, run_dir: Path, resume: bool = False) -> tuple[bool, dict]:
    """One text-to-3D run into run_dir, with its one-line summary."""
    from systems.text_to_3d import finish, prepare, teacher_warning, timed_train

    job = prepare(cfg, run_dir, resume=resume, cache_dir=Path(".cache") / "prompts")
    if (warning := teacher_warning(job)) is not None:
        print(f"warning: {warning}")
    finished, wall = timed_train(job, run_dir)
    metrics = finish(job, run_dir, wall)
    scores = "".join(f", {k} {metrics[k]:.3f}" for k in ("iou", "chamfer", "colour_mae") if k in metrics)
    print(f"{'done' if finished else 'interrupted (checkpoint saved; --resume to continue)'}: "
          f"{metrics['steps']} steps in {wall:.0f} s{scores} -> {run_dir}")
    return finished, metrics


def read_prompts(path: str | Path) -> list[str]:
    """One prompt per line; blank lines and lines starting with # are skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"--prompts '{path}': cannot read it ({err.__class__.__name__})") from None
    prompts = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise ValueError(f"--prompts '{path}': no prompts in the file (one per line)")
    return prompts


def rank_share(items: list, rank: int, world_size: int) -> list:
    """Rank r of w takes items r, r + w, r + 2w, ...: every item exactly once over all ranks."""
    return items[rank::world_size]


def _generate_many(args: argparse.Namespace) -> int:
    """--prompts FILE: every prompt into its own folder under --out (default runs/). Under torchrun each
    rank runs its share, and rank 0 writes summary.json with every rank's results (gloo gathers them)."""
    import os

    import torch.distributed as dist

    from systems.base import slug
    from ui3d.io import write_json
    from ui3d.teachers.loading import check_prompts

    if args.prompt is not None or args.resume:
        raise ValueError("--prompts runs a file of prompts; give no PROMPT and no --resume with it")
    prompts = read_prompts(args.prompts)
    root = _check_out_dir(args.out or "runs")
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    # validate every prompt before any run starts
    configs = [_generate_config(argparse.Namespace(**{**vars(args), "prompt": prompt})) for prompt in prompts]
    for spec in {cfg.teacher for cfg in configs}:
        check_prompts(spec, [p for cfg in configs if cfg.teacher == spec for p in (cfg.prompt, cfg.negative_prompt)])
    if world > 1:
        dist.init_process_group("gloo")
    try:
        results = []
        for index in rank_share(list(range(len(prompts))), rank, world):
            cfg = configs[index]
            run_dir = root / f"{index:03d}-{slug(cfg.prompt)}-s{cfg.seed}"
            finished, metrics = _run_generate(cfg, run_dir)
            results.append({"index": index, "prompt": cfg.prompt, "rank": rank, "run_dir": run_dir.name,
                            "finished": finished, **{k: metrics[k] for k in ("iou", "chamfer", "colour_mae") if k in metrics}})
        everyone = [results]
        if world > 1:
            everyone = [None] * world
            dist.all_gather_object(everyone, results)
        if rank == 0:
            merged = sorted((r for part in everyone for r in part), key=lambda r: r["index"])
            write_json(root / "summary.json", {"prompts": len(prompts), "world_size": world, "runs": merged})
    finally:
        if world > 1:
            dist.destroy_process_group()
    return 0


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="text to 3D: a prompt to a mesh, a video and metrics")
    p.add_argument("prompt", nargs="?", help='e.g. "a ceramic owl"')
    p.add_argument("--prompts", metavar="FILE", help="a file of prompts, one per line; under torchrun each rank takes its share")
    p.add_argument("--negative-prompt")
    p.add_argument("--teacher", help="builtin | sd | a hub id | a local folder (default: sd with CUDA, else builtin)")
    p.add_argument("--backend", choices=["nerf", "gaussians"])
    p.add_argument("--guidance", default="uni-instruct", choices=["sds", "vsd", "uni-instruct"])
    p.add_argument("--divergence", help="for uni-instruct: fkl (default), rkl, jeffreys, js, chi2, ...")
    p.add_argument("--preset", default="fast", choices=["fast", "quality"])
    p.add_argument("--config", help="a YAML preset file instead of --preset (see `ui3d configs`)")
    p.add_argument("--steps", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=["cpu", "cuda"])
    p.add_argument("--out", help="run folder (default: runs/<prompt>-s<seed>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run folder from its last checkpoint")
    p.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. nerf.samples_per_ray=64")
    p.set_defaults(handler=_generate)


def _split(value: str, allowed: tuple[str, ...], flag: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in items if v not in allowed]
    if unknown or not items:
        raise ValueError(f"{flag} '{value}': unknown {unknown or 'empty'}; choices: {', '.join(allowed)}")
    return items


def _bench(args: argparse.Namespace) -> int:
    if args.suite == "t23d":
        return _bench_t23d(args)
    if args.suite == "step":
        return _bench_step(args)
    from systems.bench_2d import BENCH_DIVERGENCES, bench
    from systems.distill_2d import Distill2DConfig
    from ui3d.config import load_config

    divergences = _split(args.divergences, BENCH_DIVERGENCES, "--divergences")
    oracles = _split(args.oracles, ("exact", "learned"), "--oracles")
    if args.seeds <= 0 or args.jobs <= 0:
        raise ValueError(f"--seeds and --jobs must be positive, got {args.seeds} and {args.jobs}")
    base = load_config(Distill2DConfig, args.config, args.overrides)
    print(bench(base, divergences, oracles, args.seeds, _bench_out(args), args.jobs), end="")
    return 0


def _bench_out(args: argparse.Namespace) -> Path:
    if not args.out:
        raise ValueError(f"bench {args.suite} needs --out DIR")
    return _check_out_dir(args.out)


def _bench_t23d(args: argparse.Namespace) -> int:
    from systems.bench_t23d import BENCH_PROMPTS, METHODS, bench
    from systems.text_to_3d import world_subject

    prompts = [p.strip() for p in (args.prompts or ",".join(BENCH_PROMPTS)).split(",") if p.strip()]
    if not_builtin := [p for p in prompts if world_subject(p) is None]:
        raise ValueError(f"--prompts: {not_builtin[0]!r} is not a built-in world prompt (the bench needs its ground truth)")
    methods = _split(args.methods, tuple(METHODS), "--methods")
    if min(args.seeds, args.jobs, args.steps) <= 0:
        raise ValueError(f"--seeds, --jobs and --steps must be positive, got {args.seeds}, {args.jobs}, {args.steps}")
    print(bench(prompts, methods, args.seeds, args.steps, args.backend, _bench_out(args), args.jobs), end="")
    return 0


def _bench_step(args: argparse.Namespace) -> int:
    """Seconds per photometric training step (4 views, forward + backward + Adam) per backend and size."""
    import torch

    from systems.photometric_fit import benchmark_step

    torch.set_num_threads(1)  # the documented setting: two threads on two shared cores were slower
    sizes = [int(v) for v in _split(args.sizes, ("32", "64", "128", "256"), "--sizes")]
    backends = _split(args.backends, ("nerf", "gaussians"), "--backends")
    print("| backend | size | s/step (median of 5) | peak RSS MB |\n|---|---|---|---|")
    for backend in backends:
        for size in sizes:
            r = benchmark_step(backend, size)
            print(f"| {backend} | {size}² | {r['seconds_per_step']:.3f} | {r['peak_rss_mb']:.0f} |", flush=True)
    return 0


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks (results as a markdown table)")
    p.add_argument("suite", choices=["distill2d", "t23d", "step"],
                   help="distill2d: divergences x oracles x seeds on the 2-D ring; t23d: text-to-3D on built-in prompts; "
                        "step: seconds per scene training step")
    p.add_argument("--divergences", default="rkl,fkl,jeffreys,jkl,js,chi2,hellinger,softened_rkl")
    p.add_argument("--oracles", default="exact,learned")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=1, help="parallel processes (one torch thread each)")
    p.add_argument("--prompts", help="t23d: comma-separated built-in prompts (default: 8 of them)")
    p.add_argument("--methods", default="sds,vsd,ui-fkl,ui-rkl,ui-jeffreys", help="t23d: sds, vsd, ui-fkl, ui-rkl, ui-jeffreys")
    p.add_argument("--steps", type=int, default=300, help="t23d: steps per run")
    p.add_argument("--backend", default="nerf", choices=["nerf", "gaussians"], help="t23d")
    p.add_argument("--sizes", default="32,64,128", help="step: render sizes")
    p.add_argument("--backends", default="nerf,gaussians", help="step: nerf, gaussians")
    p.add_argument("--config", help="a YAML preset for the base settings")
    p.add_argument("--out", help="output folder (distill2d, t23d)")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the base settings")
    p.set_defaults(handler=_bench)


def _configs(args: argparse.Namespace) -> int:
    for path in sorted(CONFIG_DIR.rglob("*.yaml")):
        print(path.relative_to(CONFIG_DIR))
    return 0


def _add_distill(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("distill", help="distil a teacher into a one-step generator")
    p.add_argument("--teacher",
                   help="gmm2d (default): the 2-D Gaussian-mixture benchmark; builtin: the built-in teacher (world renders as "
                        "real data); a diffusers UNet2DModel hub id or folder (needs --data)")
    p.add_argument("--data", help="image teachers: a folder of real images (png/jpg) at the teacher's resolution")
    p.add_argument("--mixture", help='gmm2d: JSON {"means": [[x, y], ...], "stds": [...], "weights": [...]}; default: the 8-mode ring')
    p.add_argument("--divergence", help="rkl, fkl, jeffreys, jkl, js, chi2, hellinger, softened_rkl or alpha:<a>")
    p.add_argument("--mode", help="exact (default), sim_sg, static or paper_code")
    p.add_argument("--gan-weight", type=float, help="image teachers: weight of the generator's adversarial term (0 = off)")
    p.add_argument("--oracle", help="gmm2d: learned (default): fake score + discriminator; exact: closed-form scores and ratio")
    p.add_argument("--steps", type=int, help="generator updates")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="image teachers: cpu (default) or cuda")
    p.add_argument("--config", help="a YAML preset (see `ui3d configs`)")
    p.add_argument("--out", help="output folder")
    p.add_argument("--resume", metavar="RUN_DIR", help="image teachers: continue a run folder from its checkpoint")
    p.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. batch=512")
    p.set_defaults(handler=_distill)
    _add_sample(sub)


# Subcommands owned by other packages: (module, function that adds them to the subparsers).
_PLUGINS = (("ui3d.teachers.cli", "add_teacher_commands"), ("ui3d.export.cli", "add_export_command"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ui3d", description="Text-to-3D and distillation with Uni-Instruct guidance.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_generate(sub)
    _add_distill(sub)
    _add_bench(sub)
    sub.add_parser("configs", help="list the YAML presets").set_defaults(handler=_configs)
    for module, function in _PLUGINS:
        try:
            add = getattr(importlib.import_module(module), function)
        except (ImportError, AttributeError):
            continue
        add(sub)
    return parser


def one_line(err: BaseException) -> str:
    """The first line of an error's message: what a user error prints (here and in the web demo)."""
    return str(err).splitlines()[0] if str(err) else type(err).__name__


OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """argparse, with key=value overrides accepted anywhere on the line (argparse takes positionals
    only before the first option) and never mistaken for the prompt."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if hasattr(args, "overrides"):
        if getattr(args, "prompt", None) and OVERRIDE.match(args.prompt):
            args.overrides, args.prompt = [args.prompt, *args.overrides], None
        args.overrides += [e for e in extra if OVERRIDE.match(e)]
        extra = [e for e in extra if not OVERRIDE.match(e)]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError) as err:  # ConfigError is a ValueError
        message = one_line(err)
        print(f"ui3d {args.command}: error: {message}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        print(f"ui3d {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
