"""`ui3d teacher train | sample | eval`: the built-in teacher's command line.

Handlers raise :class:`~ui3d.errors.UserError` for user errors (the main CLI prints one line and exits
with 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ui3d.errors import UserError, user_input

__all__ = ["add_teacher_commands", "teacher_train", "teacher_sample", "teacher_eval"]

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "teacher"


def _check_prompts(prompts: list[str], teacher=None) -> None:
    """The world grammar (names an unknown word, a missing object, two colours...), then, once a
    teacher is loaded, its tokenizer (a word it has no token for)."""
    from ui3d.world.captions import parse_prompt

    with user_input():
        for p in prompts:
            if teacher is None:
                parse_prompt(p)
            else:
                teacher.tokenizer.check(p)


def teacher_train(args: argparse.Namespace) -> int:
    from ui3d.config import load_config
    from ui3d.teachers.builtin_train import TeacherTrainConfig, train_teacher

    config = args.config
    if config is None:
        config = CONFIG_DIR / "builtin.yaml"
    elif not Path(config).is_file() and (CONFIG_DIR / f"{config}.yaml").is_file():
        config = CONFIG_DIR / f"{config}.yaml"
    if args.resume and args.config is None and (Path(args.out) / "config.yaml").is_file():
        config = Path(args.out) / "config.yaml"
    cfg = load_config(TeacherTrainConfig, config, args.overrides)
    path = train_teacher(cfg, args.out, resume=args.resume, progress=not args.quiet)
    print(f"teacher weights: {path}")
    return 0


def teacher_sample(args: argparse.Namespace) -> int:
    import torch

    from ui3d.images import save_grid
    from ui3d.teachers.builtin import DEFAULT_TEACHER_PATH, BuiltinTeacher
    from ui3d.teachers.sampling import sample_images

    if args.steps < 1:
        raise UserError(f"--steps: expected a positive number, got {args.steps}")
    if args.n < 1:
        raise UserError(f"--n: expected a positive number, got {args.n}")
    if not str(args.out).lower().endswith(".png"):
        raise UserError(f"--out: expected a .png path, got '{args.out}'")
    prompts = list(args.prompt)
    _check_prompts(prompts)
    torch.set_num_threads(args.threads)
    teacher = BuiltinTeacher.load(args.weights or DEFAULT_TEACHER_PATH)
    _check_prompts(prompts, teacher)
    gen = torch.Generator().manual_seed(args.seed)
    batch = [p for p in prompts for _ in range(args.n)]
    images = sample_images(teacher, batch, steps=args.steps, cfg=args.cfg, generator=gen)
    columns = args.n if len(prompts) > 1 else min(args.n, 8)
    save_grid(images, args.out, columns=columns, scale=args.scale, labels=prompts if len(prompts) > 1 else None)
    print(f"{len(batch)} samples -> {args.out}")
    return 0


def teacher_eval(args: argparse.Namespace) -> int:
    import torch

    from ui3d.io import write_json
    from ui3d.metrics.judge import DEFAULT_JUDGE_PATH, Judge, evaluate_teacher
    from ui3d.teachers.builtin import DEFAULT_TEACHER_PATH, BuiltinTeacher, forward_seconds

    torch.set_num_threads(args.threads)
    teacher = BuiltinTeacher.load(args.weights or DEFAULT_TEACHER_PATH)
    judge = Judge.load(args.judge or DEFAULT_JUDGE_PATH)
    report = evaluate_teacher(
        teacher, judge, per_caption=args.per_caption, steps=args.steps, cfg=args.cfg, seed=args.seed,
        progress=True, backgrounds=args.backgrounds,
    )
    if args.view_fidelity:
        from ui3d.metrics.view_fidelity import view_fidelity
        from ui3d.world.objects import OBJECTS

        report["view_fidelity"] = view_fidelity(teacher, list(OBJECTS), per_caption=args.view_fidelity, steps=args.steps,
                                                cfg=args.cfg, seed=args.seed, text_only=teacher.takes_camera)
        for key, value in report["view_fidelity"].items():
            if key.startswith(("silhouette_iou", "area_ratio")):
                report[f"view_fidelity_{key}"] = round(value, 4)
    report["forward_ms_batch8"] = round(1000 * forward_seconds(teacher, 8), 1)
    report["threads"] = torch.get_num_threads()
    report["teacher"] = teacher.info
    report["judge"] = judge.info
    text = "\n".join(f"{k}: {v}" for k, v in report.items() if not isinstance(v, dict))
    print(text)
    if args.out:
        write_json(args.out, report)
    return 0


def add_teacher_commands(subparsers: argparse._SubParsersAction) -> None:
    teacher = subparsers.add_parser("teacher", help="the built-in teacher: train, sample, evaluate")
    sub = teacher.add_subparsers(dest="teacher_command", required=True)

    p = sub.add_parser("train", help="train the built-in teacher on world renders")
    p.add_argument("--out", required=True, help="run folder (checkpoints, data, teacher.safetensors)")
    p.add_argument("--config", help="YAML preset (default configs/teacher/builtin.yaml; 'tiny' for a smoke test)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. steps=100 model.channels=[16,32,32]")
    p.set_defaults(handler=teacher_train)

    p = sub.add_parser("sample", help="sample a grid of images for prompts")
    p.add_argument("prompt", nargs="+", help='e.g. "a ceramic owl"')
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--cfg", type=float, default=4.0, help="classifier-free guidance scale")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=8, help="samples per prompt")
    p.add_argument("--scale", type=int, default=2, help="pixel upscaling of the grid")
    p.add_argument("--weights", help="teacher safetensors (default: the shipped one)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="PNG path")
    p.set_defaults(handler=teacher_sample)

    p = sub.add_parser("eval", help="judge accuracy and world-FID of teacher samples")
    p.add_argument("--weights", help="teacher safetensors (default: the shipped one)")
    p.add_argument("--judge", help="judge safetensors (default: the shipped one)")
    p.add_argument("--per-caption", type=int, default=4, help="samples per object x colour caption")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--cfg", type=float, default=4.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--backgrounds", choices=["plain", "muted"], default="plain",
                   help="the backgrounds of the renders world-FID compares with (the teacher's own: muted for v2)")
    p.add_argument("--view-fidelity", type=int, default=0, metavar="N",
                   help="also N samples per object x saturated colour at random cameras: silhouette IoU against the "
                        "true render at the camera, with the camera given and dropped (0: skip)")
    p.add_argument("--out", help="write the report as JSON here")
    p.set_defaults(handler=teacher_eval)
