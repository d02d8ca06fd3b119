"""The built-in world's one-step benchmark: distilled generators against the teacher's DDIM sampler.

    python -m systems.bench_image_distill --out runs/bench_image \
        --divergences rkl,fkl,jeffreys,js,chi2 --gan 0,0.01 --teacher-steps 1,4,10,35,79 [key=value ...]

Every variant is a `ui3d distill --teacher builtin` run from configs/image_distill/builtin.yaml
(plus the overrides) in OUT/<divergence>-gan<w>/; the teacher rows are `ui3d teacher eval
--per-caption 2 --cfg 4 --seed 0` at each step count, in OUT/teacher_steps<n>.json. Finished
variants are reused, so an interrupted benchmark continues. The table is printed as markdown.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ui3d.io import read_json, write_json

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "image_distill" / "builtin.yaml"


def teacher_row(out: Path, steps: int, cfg: float = 4.0) -> dict:
    path = out / f"teacher_steps{steps}.json"
    if not path.is_file():
        from ui3d.metrics.judge import Judge, evaluate_teacher
        from ui3d.teachers.builtin import BuiltinTeacher

        write_json(path, evaluate_teacher(BuiltinTeacher.load(), Judge.load(), per_caption=2, steps=steps, cfg=cfg, seed=0))
    r = read_json(path)
    return {"sampler": f"teacher DDIM, CFG {r['cfg']:g}", "steps": steps, "nfe": 2 * steps,
            "world_fid": r["world_fid_samples_vs_renders"], "object": r["object_accuracy"], "colour": r["colour_accuracy"],
            "per_s": r["n_samples"] / r["sampling_seconds"], "train_s": None, "floor": r["world_fid_renders_vs_renders"]}


def student_row(out: Path, divergence: str, gan: float, overrides: list[str]) -> dict:
    from systems.image_distill import ImageDistillConfig, run
    from ui3d.config import load_config

    folder = out / f"{divergence}-gan{gan:g}"
    if not (folder / "metrics.json").is_file():
        cfg = load_config(ImageDistillConfig, CONFIG, [f"guidance.divergence={divergence}", f"gan_weight={gan}", *overrides])
        run(cfg, folder)
    m = read_json(folder / "metrics.json")
    return {"sampler": f"one-step, {divergence}" + (f" + GAN {gan:g}" if gan else ""), "steps": 1, "nfe": 1,
            "world_fid": m["world_fid"], "object": m["object_accuracy"], "colour": m["colour_accuracy"],
            "per_s": m["samples_per_second"], "train_s": m["train_seconds"], "init": m.get("init_world_fid"),
            "generator_steps": m["generator_steps"]}


def throughput(run_dir: Path, steps: list[int], n: int = 64, repeats: int = 3) -> dict[str, float]:
    """Samples per second, measured back to back in one process: the teacher's DDIM sampler (CFG 4,
    bf16 autocast as in ``ui3d teacher eval``) at each step count and the one-step EMA generator of
    ``run_dir`` (fp32), n samples each, median of ``repeats`` timings."""
    import statistics
    import time

    from systems.image_distill import load_generator
    from ui3d.generator.evaluate import generate
    from ui3d.teachers.builtin import BuiltinTeacher
    from ui3d.teachers.sampling import sample_images

    teacher = BuiltinTeacher.load()
    _, gen, source = load_generator(run_dir)
    prompts = (source.captions * (n // len(source.captions) + 1))[:n]
    cond = source.embeddings[torch.arange(n) % len(source.captions)]
    out = {}
    for s in steps:
        times = []
        for r in range(repeats):
            start = time.perf_counter()
            sample_images(teacher, prompts, steps=s, cfg=4.0, generator=torch.Generator().manual_seed(r))
            times.append(time.perf_counter() - start)
        out[f"teacher_{s}"] = n / statistics.median(times)
    out["one_step"] = n / statistics.median(generate(gen, n, cond, r)[1] for r in range(repeats))
    return out


def table(rows: list[dict]) -> str:
    lines = ["| sampler | steps (NFE) | world-FID ↓ | object acc. | colour acc. | samples/s | training |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        train = f"{r['train_s'] / 60:.1f} min ({r['generator_steps']} steps)" if r["train_s"] is not None else "–"
        fid = f"{r['world_fid']:.1f}" + (f" (from {r['init']:.1f})" if r.get("init") is not None else "")
        lines.append(f"| {r['sampler']} | {r['steps']} ({r['nfe']}) | {fid} | {100 * r['object']:.1f} % | "
                     f"{100 * r['colour']:.1f} % | {r['per_s']:.1f} | {train} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--divergences", default="rkl,fkl,jeffreys,js,chi2")
    p.add_argument("--gan", default="0,0.01", help="adversarial weights")
    p.add_argument("--teacher-steps", default="1,4,10,35,79")
    p.add_argument("--throughput", metavar="RUN_DIR", help="only measure samples/s of the teacher and this run's generator")
    p.add_argument("overrides", nargs="*", help="key=value overrides of configs/image_distill/builtin.yaml")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.throughput:
        rates = throughput(Path(args.throughput), [int(s) for s in args.teacher_steps.split(",") if s])
        print("\n".join(f"{k}: {v:.1f} samples/s" for k, v in rates.items()))
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [teacher_row(out, int(s)) for s in args.teacher_steps.split(",") if s]
    for div in [d for d in args.divergences.split(",") if d]:
        for gan in [float(w) for w in args.gan.split(",") if w]:
            rows.append(student_row(out, div, gan, args.overrides))
    text = table(rows)
    (out / "table.md").write_text(text)
    print(text, end="")
    print(f"renders vs renders (the floor): {rows[0]['floor']:.1f}" if rows and "floor" in rows[0] else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
