"""The `ui3d` command line (DESIGN rule 5). A :class:`~ui3d.errors.UserError` (or an OS error the user
caused, with its path) prints one line and exits with code 2; any other exception is a bug and keeps
its traceback.

`ui3d --help` imports no torch: subcommands import their systems when they run, and the subcommands
other packages own (teacher, export) are imported only when chosen. Configs are resolved by
``systems.resolve``, the one place that merges presets, flags and overrides.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from ui3d.errors import UserError, clip, user_input

USER_ERROR = 2
INTERRUPTED = 130
FROM_PRESET = "(default: from the preset)"
CACHE_HELP = ("ui3d's cache folder; prompt embeddings go in its prompts/ (default: $UI3D_CACHE_DIR, else "
              "$XDG_CACHE_HOME/ui3d, else ~/.cache/ui3d)")


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help already says it (argparse's
    ArgumentDefaultsHelpFormatter skips options without help text and prints None)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or action.required or action.nargs == 0
                or action.default is argparse.SUPPRESS or "default" in text):
            return text
        return f"{text} (default: {'none' if action.default is None else '%(default)s'})".lstrip()


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose help shows defaults; its subcommands' parsers are Parsers too."""

    def __init__(self, *args, formatter_class=HelpFormatter, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)


def _check_out_dir(path: str | Path, flag: str = "--out") -> Path:
    from ui3d.io import check_output_folder

    return check_output_folder(path, flag)


def _steps_overrides(args: argparse.Namespace) -> list[str]:
    """--steps N as the override steps=N (what --resume may change)."""
    return args.overrides + ([f"steps={args.steps}"] if args.steps is not None else [])


def _refuse_with_resume(args: argparse.Namespace, flags: tuple[str, ...]) -> None:
    given = [f"--{name.replace('_', '-')}" for name in flags if getattr(args, name, None) is not None]
    if given:
        raise UserError(f"--resume continues a run with its own config.yaml; drop {', '.join(given)} "
                        "(only --steps N may change)")


def _has_checkpoint(folder: Path) -> bool:
    return (folder / "checkpoint.pt").is_file()


# --- distill ------------------------------------------------------------------------------------------

def _distill(args: argparse.Namespace) -> int:
    if args.teacher == "gmm2d" or (args.teacher is None and not args.resume):
        return _distill_2d(args)
    for flag, value in (("--mixture", args.mixture), ("--oracle", args.oracle)):
        if value is not None:
            raise UserError(f"{flag} is for --teacher gmm2d only")
    from systems.base import NonFiniteError
    from systems.image_distill import ImageDistillConfig, run
    from systems.resolve import preset_path, resolve, resume_config
    from ui3d.io import remove_stale_temp_files, removed_on_failure

    if args.resume:
        cfg = resume_config(ImageDistillConfig, args.resume, _steps_overrides(args))
        _refuse_with_resume(args, ("teacher", "data", "divergence", "mode", "gan_weight", "seed", "device", "config", "out"))
        run_dir = _check_out_dir(args.resume, "--resume")
        _check_checkpoint_reads(run_dir)
    else:
        if args.out is None:
            raise UserError("--out DIR is required (or --resume RUN_DIR)")
        preset = args.config or preset_path("image_distill", "builtin" if args.teacher == "builtin" else "cifar10")
        flags = {"teacher": args.teacher, "data": args.data, "guidance.divergence": args.divergence,
                 "guidance.mode": args.mode, "gan_weight": args.gan_weight, "steps": args.steps, "seed": args.seed,
                 "device": args.device}
        cfg = resolve(ImageDistillConfig, preset, [flags], args.overrides)
        run_dir = _check_out_dir(args.out)
    remove_stale_temp_files(run_dir)
    try:
        with removed_on_failure(run_dir, keep_if=_has_checkpoint):
            metrics = run(cfg, run_dir, resume=bool(args.resume))
    except NonFiniteError as err:  # a diverged run: the checkpoint before it is kept
        print(f"ui3d distill: stopped: {err} (checkpoint and losses.csv in {run_dir})", file=sys.stderr)
        return 1
    if metrics is not None:
        score = (f"world-FID {metrics['init_world_fid']} -> {metrics['world_fid']}, object accuracy "
                 f"{metrics['object_accuracy']:.3f}" if "world_fid" in metrics else f"FID {metrics['fid']}")
        print(f"{metrics['generator_steps']} generator steps, {score}, {metrics['train_seconds']:.0f} s -> {run_dir}")
    return 0


def _check_checkpoint_reads(run_dir: Path) -> None:
    """A corrupt checkpoint is refused before the teacher loads, not after a minute of set-up."""
    from systems.base import load_checkpoint

    with user_input():
        load_checkpoint(run_dir / "checkpoint.pt")


def _distill_2d(args: argparse.Namespace) -> int:
    from systems.distill_2d import Distill2DConfig, mixture_teacher, run
    from systems.resolve import resolve
    from ui3d.io import remove_stale_temp_files, removed_on_failure

    for flag, value in (("--data", args.data), ("--gan-weight", args.gan_weight), ("--resume", args.resume),
                        ("--device", args.device)):
        if value is not None:
            raise UserError(f"{flag} is for image teachers, not --teacher gmm2d")
    if args.out is None:
        raise UserError("--out DIR is required")
    flags = {"guidance.divergence": args.divergence, "guidance.mode": args.mode, "oracle": args.oracle,
             "steps": args.steps, "seed": args.seed, "mixture": args.mixture}
    cfg = resolve(Distill2DConfig, args.config, [flags], args.overrides)
    teacher = mixture_teacher(cfg)
    if teacher.dim != 2:
        raise UserError(f"mixture file '{cfg.mixture}': the 2-D benchmark needs 2-D means [[x, y], ...], "
                        f"got {teacher.dim}-D ones")
    out = _check_out_dir(args.out)
    remove_stale_temp_files(out)
    with removed_on_failure(out):
        metrics = run(cfg, teacher, out)
    print(f"{metrics['modes_covered']}/{metrics['n_modes']} modes, energy distance {metrics['energy_distance']:.4f}, "
          f"{metrics['wall_seconds']:.1f} s -> {out}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from systems.image_distill import sample

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise UserError(f"RUN_DIR '{run_dir}' is not a folder")
    if args.n < 1:
        raise UserError(f"--n: expected a positive number of samples, got {args.n}")
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


# --- generate -----------------------------------------------------------------------------------------

def _request(args: argparse.Namespace, prompt: str | None = None):
    """The flags of `ui3d generate` as the resolver's request."""
    from systems.resolve import GenerateRequest

    return GenerateRequest(
        prompt=prompt if prompt is not None else args.prompt, negative_prompt=args.negative_prompt,
        teacher=args.teacher, backend=args.backend, guidance=args.guidance, divergence=args.divergence,
        preset=args.preset or "fast", config=args.config, steps=args.steps, seed=args.seed, device=args.device,
        overrides=tuple(args.overrides))


def _say_teacher(args: argparse.Namespace, teacher: str) -> None:
    if args.teacher is None:
        why = "CUDA is present" if teacher == "sd" else "no CUDA: Stable Diffusion would take seconds per step"
        print(f"teacher: {teacher} ({why}; choose with --teacher)")


def _generate(args: argparse.Namespace) -> int:
    from systems.base import run_folder
    from systems.resolve import resume_config, text_to_3d_config
    from systems.text_to_3d import TextTo3DConfig

    if args.prompts:
        return _generate_many(args)
    if args.resume:
        cfg, run_dir = resume_config(TextTo3DConfig, args.resume, _steps_overrides(args)), Path(args.resume)
        _refuse_with_resume(args, ("prompt", "negative_prompt", "teacher", "backend", "guidance", "divergence",
                                   "preset", "config", "seed", "device", "out"))
    else:
        if args.prompt is None:
            raise UserError('a prompt is required, e.g. ui3d generate "a ceramic owl"')
        cfg = text_to_3d_config(_request(args))
        _say_teacher(args, cfg.teacher)
        run_dir = Path(args.out) if args.out else run_folder("runs", cfg.prompt, cfg.seed)
    finished, _ = _run_generate(cfg, run_dir, bool(args.resume), args.cache_dir)
    return 0 if finished else INTERRUPTED


def _run_generate(cfg, run_dir: Path, resume: bool = False, cache_dir: str | None = None) -> tuple[bool, dict]:
    """One text-to-3D run into run_dir, checked before any work, with its one-line summary. A run
    that fails before its first checkpoint leaves no folder behind."""
    from systems.resolve import check_generate_run
    from systems.text_to_3d import finish, prepare, teacher_warning, timed_train
    from ui3d.io import remove_stale_temp_files, removed_on_failure
    from ui3d.prompt.embeddings import prompt_cache_dir

    check_generate_run(cfg, run_dir, resume)
    remove_stale_temp_files(run_dir)
    with removed_on_failure(run_dir, keep_if=_has_checkpoint):
        job = prepare(cfg, run_dir, resume=resume, cache_dir=prompt_cache_dir(cache_dir))
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
        raise UserError(f"--prompts '{path}': cannot read it ({err.__class__.__name__})") from None
    prompts = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise UserError(f"--prompts '{path}': no prompts in the file (one per line)")
    return prompts


def rank_share(items: list, rank: int, world_size: int) -> list:
    """Rank r of w takes items r, r + w, r + 2w, ...: every item exactly once over all ranks."""
    return items[rank::world_size]


SCORES = ("iou", "chamfer", "colour_mae")


def _generate_many(args: argparse.Namespace) -> int:
    """--prompts FILE: every prompt into its own folder under --out (default runs/). A folder whose run
    is complete is skipped and one with a checkpoint is resumed, so the same command finishes a
    crashed or interrupted batch. Under torchrun each rank runs its share, and rank 0 writes
    summary.json with every rank's results (gloo gathers them)."""
    import os
    from dataclasses import replace

    from systems.base import slug
    from systems.resolve import run_complete, text_to_3d_config
    from ui3d.io import read_json, write_json
    from ui3d.teachers.loading import check_prompts

    if args.prompt is not None or args.resume:
        raise UserError("--prompts runs a file of prompts; give no PROMPT and no --resume with it")
    prompts = read_prompts(args.prompts)
    root = _check_out_dir(args.out or "runs")
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    # every prompt is checked before any run starts
    request = _request(args)
    configs = [text_to_3d_config(replace(request, prompt=prompt)) for prompt in prompts]
    for spec in {cfg.teacher for cfg in configs}:
        with user_input():
            check_prompts(spec, [p for cfg in configs if cfg.teacher == spec for p in (cfg.prompt, cfg.negative_prompt)])
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group("gloo")
    try:
        results = []
        for index in rank_share(list(range(len(prompts))), rank, world):
            cfg = configs[index]
            run_dir = root / f"{index:03d}-{slug(cfg.prompt)}-s{cfg.seed}"
            if run_complete(run_dir, cfg.steps):
                print(f"already done: {run_dir}")
                finished, metrics = True, read_json(run_dir / "metrics.json")
            else:
                finished, metrics = _run_generate(cfg, run_dir, _has_checkpoint(run_dir), args.cache_dir)
            results.append({"index": index, "prompt": cfg.prompt, "rank": rank, "run_dir": run_dir.name,
                            "finished": finished, **{k: metrics[k] for k in SCORES if k in metrics}})
            if not finished:  # interrupted: stop the batch here; the same command continues it
                break
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
    return 0 if all(r["finished"] for r in results) else INTERRUPTED


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="text to 3D: a prompt to a mesh, a video and metrics")
    p.add_argument("prompt", nargs="?", help='e.g. "a ceramic owl"')
    p.add_argument("--prompts", metavar="FILE", help="a file of prompts, one per line; a run already complete under "
                   "--out is skipped, so the same command finishes a crashed batch; under torchrun each rank takes its share")
    p.add_argument("--negative-prompt", help=FROM_PRESET)
    p.add_argument("--teacher", help="builtin | FILE.safetensors | exact-view | exact-camera (the world's oracles) | "
                                     "sd | a hub id | a local folder (default: the preset's, else sd with "
                                     "CUDA, else builtin)")
    p.add_argument("--backend", choices=["nerf", "gaussians"], help=FROM_PRESET)
    p.add_argument("--guidance", choices=["sds", "vsd", "uni-instruct"],
                   help="a guidance preset; replaces the preset file's guidance section (default: from the preset; "
                        "uni-instruct in the shipped ones)")
    p.add_argument("--divergence", help="vsd and uni-instruct: fkl, rkl, jeffreys, js, chi2, ... (sds takes none: its "
                                        "fake score is the noise) (default: from the guidance preset)")
    p.add_argument("--preset", choices=["fast", "quality"], help="configs/text_to_3d/<preset>.yaml (default: fast)")
    p.add_argument("--config", help="a YAML preset file instead of --preset (see `ui3d configs`)")
    p.add_argument("--steps", type=int, help=FROM_PRESET)
    p.add_argument("--seed", type=int, help=FROM_PRESET)
    p.add_argument("--device", choices=["cpu", "cuda"], help=FROM_PRESET)
    p.add_argument("--out", help="run folder (default: runs/<prompt>-s<seed>-<time>; with --prompts, runs/)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run folder from its last checkpoint")
    p.add_argument("--cache-dir", help=CACHE_HELP)
    p.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. nerf.samples_per_ray=64")
    p.set_defaults(handler=_generate)


# --- bench --------------------------------------------------------------------------------------------

def _split(value: str, allowed: tuple[str, ...], flag: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in items if v not in allowed]
    if unknown or not items:
        raise UserError(f"{flag} '{clip(value)}': unknown {unknown or 'empty'}; choices: {', '.join(allowed)}")
    return items


def _bench(args: argparse.Namespace) -> int:
    if args.suite == "t23d":
        return _bench_t23d(args)
    if args.suite == "step":
        return _bench_step(args)
    from systems.bench_2d import bench, parse_divergences
    from systems.distill_2d import Distill2DConfig
    from systems.resolve import resolve

    divergences = parse_divergences(args.divergences)
    oracles = _split(args.oracles, ("exact", "learned"), "--oracles")
    if args.seeds <= 0 or args.jobs <= 0:
        raise UserError(f"--seeds and --jobs must be positive, got {args.seeds} and {args.jobs}")
    base = resolve(Distill2DConfig, args.config, overrides=args.overrides)
    print(bench(base, divergences, oracles, args.seeds, _bench_out(args), args.jobs), end="")
    return 0


def _bench_out(args: argparse.Namespace) -> Path:
    if not args.out:
        raise UserError(f"bench {args.suite} needs --out DIR")
    return _check_out_dir(args.out)


def _bench_t23d(args: argparse.Namespace) -> int:
    from systems.bench_t23d import BENCH_PROMPTS, METHODS, bench
    from systems.resolve import GenerateRequest
    from ui3d.teachers.oracle import ORACLE_SPECS
    from systems.text_to_3d import world_subject

    if args.rescore:
        from systems.bench_t23d import rescore

        out = _bench_out(args)
        if not (out / "results.json").is_file():
            raise UserError(f"--rescore: {str(out)!r} holds no finished bench (results.json)")
        print(rescore(out, args.jobs), end="")
        return 0
    prompts = [p.strip() for p in (args.prompts or ",".join(BENCH_PROMPTS)).split(",") if p.strip()]
    if not_builtin := [p for p in prompts if world_subject(p) is None]:
        raise UserError(f"--prompts: {clip(not_builtin[0])!r} is not a built-in world prompt (the bench needs its ground truth)")
    methods = _split(args.methods, tuple(METHODS), "--methods")
    teachers = _split(args.teachers, ("builtin", *ORACLE_SPECS), "--teachers")
    if min(args.seeds, args.jobs, args.steps or 1) <= 0:
        raise UserError(f"--seeds, --jobs and --steps must be positive, got {args.seeds}, {args.jobs}, {args.steps}")
    request = GenerateRequest(backend=args.backend, steps=args.steps, config=args.config, overrides=tuple(args.overrides))
    print(bench(prompts, methods, args.seeds, request, _bench_out(args), args.jobs, tuple(teachers), args.ceiling), end="")
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
    p.add_argument("--divergences", default="rkl,fkl,jeffreys,jkl,js,chi2,hellinger,softened_rkl", help="distill2d")
    p.add_argument("--oracles", default="exact,learned", help="distill2d")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=1, help="parallel processes (one torch thread each)")
    p.add_argument("--prompts", help="t23d: comma-separated built-in prompts (default: 8 of them)")
    p.add_argument("--methods", default="sds,vsd,ui-fkl,ui-rkl,ui-jeffreys", help="t23d: sds, vsd, ui-fkl, ui-rkl, ui-jeffreys")
    p.add_argument("--steps", type=int, default=None, help="t23d: steps per run (default: the preset's)")
    p.add_argument("--teachers", default="builtin",
                   help="t23d: builtin, exact-view, exact-camera (the world's oracles: rows that split the error)")
    p.add_argument("--rescore", action="store_true",
                   help="t23d: export every finished run of --out again from its saved scene (after the export changed)")
    p.add_argument("--ceiling", action="store_true",
                   help="t23d: also fit each prompt's true renders photometrically (the representation's ceiling)")
    p.add_argument("--backend", default="nerf", choices=["nerf", "gaussians"], help="t23d")
    p.add_argument("--sizes", default="32,64,128", help="step: render sizes")
    p.add_argument("--backends", default="nerf,gaussians", help="step: nerf, gaussians")
    p.add_argument("--config", help="distill2d, t23d: a YAML preset for the base settings (default: the class "
                                    "defaults; t23d: configs/text_to_3d/fast.yaml)")
    p.add_argument("--out", help="output folder (distill2d, t23d)")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the base settings")
    p.set_defaults(handler=_bench)


def _configs(args: argparse.Namespace) -> int:
    from systems.resolve import CONFIG_DIR

    for path in sorted(CONFIG_DIR.rglob("*.yaml")):
        print(path.relative_to(CONFIG_DIR))
    return 0


def _add_distill(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("distill", help="distil a teacher into a one-step generator")
    p.add_argument("--teacher",
                   help="gmm2d (default): the 2-D Gaussian-mixture benchmark; builtin: the built-in teacher (world renders as "
                        "real data); a diffusers UNet2DModel hub id or folder (needs --data)")
    p.add_argument("--data", help="image teachers: a folder of real images (png/jpg) at the teacher's resolution; "
                                  "builtin takes none")
    p.add_argument("--mixture", help='gmm2d: JSON {"means": [[x, y], ...], "stds": [...], "weights": [...]} '
                                     "(default: the 8-mode ring)")
    p.add_argument("--divergence", help="rkl, fkl, jeffreys, jkl, js, chi2, hellinger, softened_rkl or alpha:<a> " + FROM_PRESET)
    p.add_argument("--mode", help="exact, exact_cv, by_parts, sim_sg, static or paper_code " + FROM_PRESET)
    p.add_argument("--gan-weight", type=float, help="image teachers: weight of the generator's adversarial term "
                                                    "(0 = off) " + FROM_PRESET)
    p.add_argument("--oracle", help="gmm2d: learned (fake score + discriminator) or exact (closed-form scores and "
                                    "ratio) " + FROM_PRESET)
    p.add_argument("--steps", type=int, help="generator updates " + FROM_PRESET)
    p.add_argument("--seed", type=int, help=FROM_PRESET)
    p.add_argument("--device", help="image teachers: cpu or cuda " + FROM_PRESET)
    p.add_argument("--config", help="a YAML preset, see `ui3d configs` (default: gmm2d: the class defaults; builtin: "
                                    "configs/image_distill/builtin.yaml; other teachers: configs/image_distill/cifar10.yaml)")
    p.add_argument("--out", help="output folder")
    p.add_argument("--resume", metavar="RUN_DIR", help="image teachers: continue a run folder from its checkpoint")
    p.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. batch=512")
    p.set_defaults(handler=_distill)
    _add_sample(sub)


# --- the parser -----------------------------------------------------------------------------------------

# Subcommands other packages own: name -> (module, function that adds them to the subparsers, the
# one-line help `ui3d --help` shows without importing the module).
PLUGINS = {
    "teacher": ("ui3d.teachers.cli", "add_teacher_commands", "the built-in teacher: train, sample, evaluate"),
    "export": ("ui3d.export.cli", "add_export_command", "re-export a saved scene (mesh, Gaussians, video)"),
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv``: the plugin subcommand ``argv`` chooses is imported (an ImportError is a
    bug and shows); the others appear in the help by name only."""
    parser = Parser(prog="ui3d", description="Text-to-3D and distillation with Uni-Instruct guidance.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_generate(sub)
    _add_distill(sub)
    _add_bench(sub)
    sub.add_parser("configs", help="list the YAML presets").set_defaults(handler=_configs)
    chosen = next((a for a in (argv or []) if not a.startswith("-")), None)
    for name, (module, function, help_text) in PLUGINS.items():
        if name == chosen:
            getattr(importlib.import_module(module), function)(sub)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def one_line(err: BaseException) -> str:
    """The first line of an error's message, cut to a readable length: what a user error prints
    (here and in the web demo)."""
    return clip(str(err).splitlines()[0], 1000) if str(err).strip() else type(err).__name__


# OS errors a user causes with a path (a read-only or full --out, a file where a folder should be).
USER_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EEXIST,
                         errno.ENOTDIR, errno.EISDIR, errno.ENOENT, errno.ENAMETOOLONG})


def user_caused(err: OSError) -> bool:
    return err.filename is not None and err.errno in USER_ERRNOS


OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """argparse, with key=value overrides accepted anywhere on the line (argparse takes positionals
    only before the first option) and never mistaken for the prompt."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    parser = build_parser(argv)
    args, extra = parser.parse_known_args(argv)
    if hasattr(args, "overrides"):
        if getattr(args, "prompt", None) and OVERRIDE.match(args.prompt):
            args.overrides, args.prompt = [args.prompt, *args.overrides], None
        args.overrides += [e for e in extra if OVERRIDE.match(e)]
        extra = [e for e in extra if not OVERRIDE.match(e)]
    if extra:
        parser.error(f"unrecognized arguments: {clip(' '.join(extra))}")
    return args


def _fail(command: str, message: str) -> int:
    print(f"ui3d {command}: error: {message}", file=sys.stderr)
    return USER_ERROR


OUR_PACKAGES = ("ui3d", "systems")
OUR_FOLDERS = tuple(Path(__file__).resolve().parents[1] / name for name in OUR_PACKAGES)


def _is_ours(category: type[Warning], filename: str) -> bool:
    """A warning of a category ui3d defines, or raised in ui3d's code. The category decides first: a
    warning raised inside a ``torch.no_grad()`` function names a torch frame as its file."""
    return (category.__module__.split(".")[0] in OUR_PACKAGES
            or any(Path(filename).resolve().is_relative_to(folder) for folder in OUR_FOLDERS))


def _one_line_warnings(show: Callable) -> Callable:
    """``warnings.showwarning`` that prints ui3d's own UserWarnings as one ``warning: <message>`` line on
    stderr (no file, line or source: the message says what happened) and leaves the others to ``show``."""

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, UserWarning) and _is_ours(category, filename):
            print(f"warning: {one_line(message)}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return showwarning


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with warnings.catch_warnings():  # restores showwarning when the command ends
        warnings.showwarning = _one_line_warnings(warnings.showwarning)
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """The handler, with user errors as one line and exit code 2."""
    try:
        return args.handler(args)
    except UserError as err:  # ConfigError is one
        return _fail(args.command, one_line(err))
    except OSError as err:
        if not user_caused(err):
            raise
        return _fail(args.command, f"{err.strerror}: '{clip(err.filename)}'")
    except KeyboardInterrupt:
        print(f"ui3d {args.command}: interrupted", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
