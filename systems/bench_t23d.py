"""`ui3d bench t23d`: text-to-3D on built-in prompts, scored against the world's ground truth.

IoU alone misleads (a centred sphere already scores 0.73 on the cube; DESIGN.md), so every run is
reported with:
- ``iou``: the exported mesh against the true occupancy (64³; the mesh's automatic threshold);
- ``iou_best``: the scene's density grid at the best of a sweep of thresholds (the shape the field
  holds, whatever the export threshold);
- ``silhouette_iou``: opacity > 0.5 against the true silhouettes over 8 orbit views;
- ``volume_ratio``, ``truth_covered``: the mesh's volume over the truth's and the share of the truth
  inside it, which say why an IoU is low (too large, or in the wrong place);
- ``chamfer``, ``colour_mae``: of the exported mesh;
- ``r_precision``: the run's ``judge_recognition`` (the judge's object recognition on 16 albedo
  renders of the result on mid-grey; before 2026-12-02: 8 renders on white, where white objects vanish);
and two references per prompt: ``sphere_iou``, the best centred sphere (a result at or below it
learned nothing), and optionally a photometric fit to true renders (the representation's ceiling).
"""

from __future__ import annotations

import json
import math
import statistics
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from systems.resolve import GenerateRequest, text_to_3d_config

# Prompts the built-in teacher draws recognisably. White and off-white objects are left out: its
# samples of "a ceramic owl" or "a white owl" are noise (assets/BUILTIN_TEACHER.md), so no guidance
# can do better than noise on them.
BENCH_PROMPTS = ("a red cube", "a blue torus", "a green cone", "a yellow mug", "a brown owl",
                 "a purple cylinder", "an orange rocket", "a red mushroom")
METHODS: dict[str, tuple[str, str | None]] = {  # name -> (guidance preset, divergence)
    "sds": ("sds", None),
    "vsd": ("vsd", None),
    "ui-fkl": ("uni-instruct", "fkl"),
    "ui-rkl": ("uni-instruct", "rkl"),
    "ui-jeffreys": ("uni-instruct", "jeffreys"),
}
EVAL_RESOLUTION = 64
VIEWS = 8


def sphere_baseline_iou(subject, resolution: int = EVAL_RESOLUTION) -> float:
    """IoU of the best centred sphere (radii 0.02 … 1.0) with the true occupancy."""
    from ui3d.metrics.geometry import iou
    from ui3d.world.ground_truth import grid_points, occupancy_grid

    truth = occupancy_grid(subject, resolution)
    radius = grid_points(resolution).norm(dim=-1)
    return max(iou(radius < r, truth) for r in torch.linspace(0.02, 1.0, 50).tolist())


def best_threshold_iou(scene, subject, resolution: int = EVAL_RESOLUTION) -> tuple[float, float]:
    """(IoU, threshold) of the density grid at the best of a geometric threshold sweep."""
    from ui3d.export.mesh import density_grid
    from ui3d.metrics.geometry import iou
    from ui3d.world.ground_truth import occupancy_grid

    truth = occupancy_grid(subject, resolution)
    with torch.no_grad():
        density = density_grid(scene, resolution)
    thresholds = torch.logspace(-2, 3, 26).tolist()
    return max((iou(density > th, truth), th) for th in thresholds)


def silhouette_iou(scene, subject) -> float:
    """Silhouette IoU (opacity > 0.5) against the truth over 8 orbit views."""
    from ui3d.cameras import orbit_cameras
    from ui3d.metrics.geometry import iou
    from ui3d.world.render import render_world

    cams = orbit_cameras(VIEWS, 32, elevation_deg=15.0)
    with torch.no_grad():
        ours = scene.render(cams, shading="albedo", background=torch.ones(3), normals=False)
        truth = render_world(subject, cams)
    return iou(ours.alpha[..., 0] > 0.5, truth.alpha[..., 0] > 0.5)


@dataclass(frozen=True)
class BenchRun:
    prompt: str
    method: str
    seed: int
    request: GenerateRequest  # the bench's settings (backend, steps, preset, overrides); prompt and method set here
    out: Path
    teacher: str = "builtin"  # or one of ui3d.teachers.oracle.ORACLE_SPECS

    def config(self):
        """The run's config, resolved like `ui3d generate` resolves its flags."""
        guidance, divergence = METHODS[self.method]
        return text_to_3d_config(replace(self.request, prompt=self.prompt, seed=self.seed, teacher=self.teacher,
                                          guidance=guidance, divergence=divergence))

    @property
    def name(self) -> str:
        from systems.base import slug

        teacher = "" if self.teacher == "builtin" else f"_{self.teacher}"
        return f"{slug(self.prompt)}_{self.method}{teacher}_s{self.seed}"


def empty_scores(err: Exception) -> dict:
    """The mesh scores of a scene that exports nothing: an empty shape overlaps nothing (IoU 0)."""
    return {"iou": 0.0, "export_error": str(err).splitlines()[0]}


def run_one(run: BenchRun) -> dict:
    """One generate run plus the extra metrics (in a worker process: one torch thread). Resumable:
    a run folder with bench.json is read back; one with a finished export is scored again."""
    torch.set_num_threads(1)
    from systems.text_to_3d import finish, judge_recognition, prepare, timed_train, world_subject
    from ui3d.export.mesh import EmptySceneError
    from ui3d.io import read_json, write_json
    from ui3d.metrics.judge import Judge
    from ui3d.scene.base import load_scene

    run_dir = run.out / "runs" / run.name
    if (run_dir / "bench.json").is_file():
        return read_json(run_dir / "bench.json")
    if (run_dir / "metrics.json").is_file():
        metrics, log = read_json(run_dir / "metrics.json"), _read_log(run_dir / "losses.csv")
        scene = load_scene(run_dir / "scene")
    else:
        job = prepare(run.config(), run_dir, resume=False, cache_dir=run.out / "prompt-cache")
        _, wall = timed_train(job, run_dir, progress=False)
        try:
            metrics = finish(job, run_dir, wall, formats=("glb",))
        except EmptySceneError as err:  # the run's result, not the bench's failure: the other runs go on
            metrics = {"steps": job.step, "wall_seconds": round(wall, 1), **empty_scores(err)}
        log, scene = job.log, job.scene
    subject = world_subject(run.prompt)
    scene.eval()
    metrics["iou_best"], metrics["best_threshold"] = best_threshold_iou(scene, subject)
    metrics["silhouette_iou"] = silhouette_iou(scene, subject)
    if "judge_recognition" not in metrics:  # a run exported before `finish` judged its results
        metrics["judge_recognition"] = judge_recognition(scene, subject, Judge.load())
    metrics["r_precision"] = metrics["judge_recognition"]
    split = {k: statistics.median(float(r[k]) for r in log if r.get(k) not in (None, ""))
             for k in ("t_render", "t_guidance", "t_backward", "t_fake") if any(r.get(k) not in (None, "") for r in log)}
    result = {"prompt": run.prompt, "method": run.method, "teacher": run.teacher, "seed": run.seed,
              "run_dir": run_dir.name, **metrics, **split}
    write_json(run_dir / "bench.json", result)
    return result


def rescore_one(run_dir: Path) -> dict:
    """A finished run's mesh metrics, silhouettes and R-precision again, from its saved scene with
    today's export and clean-up (after they changed: training is not repeated); updates
    metrics.json and bench.json."""
    torch.set_num_threads(1)
    from systems.text_to_3d import TextTo3DConfig, judge_recognition, keep_mesh_region, mesh_scores, world_subject
    from ui3d.config import load_config
    from ui3d.export.mesh import EmptySceneError, extract_mesh
    from ui3d.io import read_json, write_json
    from ui3d.metrics.judge import Judge
    from ui3d.scene.base import load_scene

    result = read_json(run_dir / "bench.json")
    scene = load_scene(run_dir / "scene")
    scene.eval()
    subject = world_subject(result["prompt"])
    export = load_config(TextTo3DConfig, run_dir / "config.yaml").export  # the run's own mesh settings
    try:
        mesh = extract_mesh(scene, export)
    except EmptySceneError as err:
        scores = empty_scores(err)
    else:
        keep_mesh_region(scene, mesh, export.bound)  # as `finish` does
        scores = mesh_scores(mesh, subject)
    scores["silhouette_iou"] = silhouette_iou(scene, subject)
    scores["judge_recognition"] = scores["r_precision"] = judge_recognition(scene, subject, Judge.load())
    saved = read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").is_file() else {}  # none if it failed
    for record in (saved, result):  # today's export decides: an earlier failure is history
        record.pop("export_error", None)
    metrics = {**saved, **scores}
    result = {**result, **scores}
    write_json(run_dir / "metrics.json", metrics)
    write_json(run_dir / "bench.json", result)
    return result


def _read_log(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _mean(rows: list[dict], key: str) -> float:
    vals = [r[key] for r in rows if key in r]
    return sum(vals) / len(vals) if vals else float("nan")


def row_label(run: dict) -> str:
    """A table row: the method, and the teacher where it is an oracle ("vsd [exact-camera]")."""
    teacher = run.get("teacher", "builtin")
    return run["method"] if teacher == "builtin" else f"{run['method']} [{teacher}]"


def markdown_table(results: list[dict], spheres: dict[str, float], ceilings: dict[str, float] | None = None) -> str:
    cols = ("iou", "volume_ratio", "truth_covered", "iou_best", "silhouette_iou", "chamfer", "colour_mae", "r_precision",
            "wall_seconds")
    ceilings = ceilings or {}
    lines = ["| prompt | method | sphere IoU | ceiling IoU | " + " | ".join(cols)
             + " | s/step (render, teacher+fake fwd, backward, fake turn) |", "|---" * (len(cols) + 5) + "|"]
    for prompt in dict.fromkeys(r["prompt"] for r in results):
        for label in dict.fromkeys(row_label(r) for r in results):
            rows = [r for r in results if r["prompt"] == prompt and row_label(r) == label]
            if not rows:
                continue
            cells = [f"{_mean(rows, c):.3f}" if c != "wall_seconds" else f"{_mean(rows, c):.0f}" for c in cols]
            parts = (_mean(rows, k) for k in ("t_render", "t_guidance", "t_backward", "t_fake"))
            split = ", ".join("–" if math.isnan(v) else f"{v:.2f}" for v in parts)  # NaN: SDS has no fake turn
            ceiling = f"{ceilings[prompt]:.3f}" if prompt in ceilings else "–"
            lines.append(f"| {prompt} | {label} | {spheres[prompt]:.3f} | {ceiling} | " + " | ".join(cells) + f" | {split} |")
    return "\n".join(lines) + "\n"


def summary_table(results: list[dict], spheres: dict[str, float]) -> str:
    """Per row (method and teacher), over prompts (each prompt's mean over seeds): mean IoU, mean
    best-threshold IoU, mean R-precision, and on how many prompts the IoU beats the sphere line and
    SDS's IoU."""
    def per_prompt(label: str, key: str) -> dict[str, float]:
        return {p: _mean([r for r in results if r["prompt"] == p and row_label(r) == label], key) for p in spheres}

    labels = list(dict.fromkeys(row_label(r) for r in results))
    sds = per_prompt("sds", "iou") if "sds" in labels else {}
    lines = ["| method | mean iou | mean iou_best | mean r_precision | iou > sphere | iou > sds |", "|---|---|---|---|---|---|"]
    for m in labels:
        iou = per_prompt(m, "iou")
        done = [p for p in spheres if not math.isnan(iou[p])]  # prompts with runs
        above = sum(iou[p] > spheres[p] for p in done)
        beats = f"{sum(iou[p] > sds[p] for p in done)}/{len(done)}" if sds and m != "sds" else "–"
        means = [statistics.mean(per_prompt(m, k)[p] for p in done) for k in ("iou", "iou_best", "r_precision")]
        lines.append(f"| {m} | " + " | ".join(f"{v:.3f}" for v in means) + f" | {above}/{len(done)} | {beats} |")
    return "\n".join(lines) + "\n"


def paired_differences(results: list[dict], a: str, b: str, key: str = "iou") -> dict | None:
    """Row ``a`` minus row ``b`` on the same prompt and seed: per seed the mean over prompts, and
    their mean and spread (sample sd over seeds); None without pairs."""
    value = {(r["prompt"], r["seed"], row_label(r)): r[key] for r in results if key in r}
    pairs = [(p, s) for (p, s, label) in value if label == a and (p, s, b) in value]
    if not pairs:
        return None
    seeds = sorted({s for _, s in pairs})
    per_seed = [statistics.mean(value[p, s, a] - value[p, s, b] for p, s2 in pairs if s2 == s) for s in seeds]
    wins = sum(value[p, s, a] > value[p, s, b] for p, s in pairs)
    sd = statistics.stdev(per_seed) if len(per_seed) > 1 else float("nan")
    return {"per_seed": per_seed, "mean": statistics.mean(per_seed), "sd_over_seeds": sd, "wins": wins,
            "pairs": len(pairs)}


def paired_table(results: list[dict], a: str = "ui-fkl", b: str = "vsd") -> str:
    diff = paired_differences(results, a, b)
    if diff is None:
        return ""
    seeds = ", ".join(f"{d:+.3f}" for d in diff["per_seed"])
    return (f"{a} − {b}, IoU on the same prompt and seed: per seed (mean over prompts) {seeds}; "
            f"mean {diff['mean']:+.3f}, sd over seeds {diff['sd_over_seeds']:.3f}; "
            f"{a} higher in {diff['wins']} of {diff['pairs']} pairs\n")


def photometric_ceiling(prompt: str, backend: str, out: Path) -> float:
    """IoU of the representation fitted to the prompt's true renders (systems.photometric_fit, its
    defaults): what this scene and export can reach at all. Cached in out/ceilings/."""
    torch.set_num_threads(1)
    from systems.base import slug
    from systems.photometric_fit import FitConfig, fit
    from systems.text_to_3d import world_subject
    from ui3d.io import read_json, write_json

    path = out / "ceilings" / f"{slug(prompt)}_{backend}.json"
    if path.is_file():
        return read_json(path)["iou"]
    result = fit(FitConfig(backend=backend, object=world_subject(prompt).shape.name))
    write_json(path, {"prompt": prompt, "backend": backend, **result.metrics})
    return result.metrics["iou"]


def bench(prompts: list[str], methods: list[str], seeds: int, request: GenerateRequest, out: Path, jobs: int,
          teachers: tuple[str, ...] = ("builtin",), ceiling: bool = False) -> str:
    """Run prompts × methods × teachers × seeds (``jobs`` processes) with the settings of
    ``request``, and with ``ceiling`` one photometric fit per prompt; write results.json and
    table.md in out. Every run's config is checked before the first one starts."""
    from ui3d.io import atomic_write_text, write_json
    from systems.text_to_3d import world_subject

    # seed outermost: an interrupted bench has whole tables of the first seeds (and resumes the rest)
    runs = [BenchRun(p, m, s, request, out, t) for s in range(seeds) for p in prompts for t in teachers for m in methods]
    for run in runs:
        run.config()
    out.mkdir(parents=True, exist_ok=True)
    spheres = {p: sphere_baseline_iou(world_subject(p)) for p in prompts}
    backend = runs[0].config().backend
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        pending = pool.map(run_one, runs)  # queued first: the fits run after the bench's own runs
        fits = [pool.submit(photometric_ceiling, p, backend, out) for p in prompts] if ceiling else []
        results = list(pending)
        ceilings = {p: f.result() for p, f in zip(prompts, fits)}
    write_json(out / "results.json", {"spheres": spheres, "ceilings": ceilings, "runs": results})
    atomic_write_text(out / "table.md", _tables(results, spheres, ceilings))
    return _tables(results, spheres, ceilings)


def _tables(results: list[dict], spheres: dict[str, float], ceilings: dict[str, float]) -> str:
    return (markdown_table(results, spheres, ceilings) + "\n" + summary_table(results, spheres) + "\n"
            + paired_table(results))


def rescore(out: Path, jobs: int) -> str:
    """:func:`rescore_one` for every run of the bench in ``out``; rewrites results.json and table.md."""
    from ui3d.io import atomic_write_text, write_json

    data = json.loads((out / "results.json").read_text())
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        data["runs"] = list(pool.map(rescore_one, [out / "runs" / r["run_dir"] for r in data["runs"]]))
    write_json(out / "results.json", data)
    table = _tables(data["runs"], data["spheres"], data.get("ceilings", {}))
    atomic_write_text(out / "table.md", table)
    return table


def load_table(out: Path) -> str:
    data = json.loads((out / "results.json").read_text())
    return _tables(data["runs"], data["spheres"], data.get("ceilings", {}))
