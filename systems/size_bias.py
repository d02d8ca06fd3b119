"""How large the built-in teacher draws objects, and how large the scenes it guides come out.

Both against the true render at the same camera (silhouette area ratio, median over views; silhouette
IoU, mean), so the two can be read side by side (docs/benchmarks.md, "Teacher CFG in text-to-3D"):

    python -m systems.size_bias teacher --objects cube,torus --cfgs 1.5,2.5,4,7.5
    python -m systems.size_bias runs runs/bench_cfg25/runs/a-red-cube_ui-fkl_s0 ...

``teacher``: samples of red and blue objects (:func:`ui3d.metrics.view_fidelity.view_fidelity`, camera
given) per CFG. ``runs``: each saved scene's opacity (> 0.5) at 16 dataset cameras against the truth's.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

VIEWS = 16


def silhouette_size(ours: Tensor, truth: Tensor) -> dict:
    """Median per-view area ratio and mean IoU of boolean silhouettes [V, H, W] (ours against the truth)."""
    inter = (ours & truth).flatten(1).sum(1).float()
    union = (ours | truth).flatten(1).sum(1).clamp_min(1).float()
    area = ours.flatten(1).sum(1).float() / truth.flatten(1).sum(1).clamp_min(1).float()
    return {"area_ratio": statistics.median(area.tolist()), "silhouette_iou": float((inter / union).mean())}


def scene_size(render_alpha: Callable[[object], Tensor], subject, seed: int = 0) -> dict:
    """:func:`silhouette_size` of ``render_alpha(cameras)`` [V, H, W] against the true renders of
    ``subject`` at 16 random dataset cameras (32², seed ``seed``)."""
    from ui3d.cameras import sample_random_cameras
    from ui3d.world.dataset import dataset_cameras
    from ui3d.world.render import render_world

    cams = sample_random_cameras(VIEWS, 32, dataset_cameras(), torch.Generator().manual_seed(seed))
    truth = render_world(subject, cams).alpha[..., 0] > 0.5
    with torch.no_grad():
        ours = render_alpha(cams) > 0.5
    return silhouette_size(ours, truth)


def finished_scene(run_dir: Path, metrics: dict):
    """A run's saved scene as ``finish`` leaves it today, only the mesh's region kept: a run made
    before that change (no ``floaters_removed`` in its metrics) is cut the same way here, so its
    floaters do not count."""
    from systems.text_to_3d import TextTo3DConfig, keep_mesh_region
    from ui3d.config import load_config
    from ui3d.export.mesh import extract_mesh
    from ui3d.scene.base import find_scene_dir, load_scene

    scene = load_scene(find_scene_dir(run_dir))
    if "floaters_removed" not in metrics:
        export = load_config(TextTo3DConfig, run_dir / "config.yaml").export
        keep_mesh_region(scene, extract_mesh(scene, export), export.bound)
    return scene


def run_size(run_dir: Path) -> dict:
    """:func:`scene_size` of a finished text-to-3D run's scene (:func:`finished_scene`), with its IoU."""
    from systems.text_to_3d import world_subject

    metrics = json.loads((run_dir / "metrics.json").read_text())
    scene = finished_scene(run_dir, metrics)
    size = scene_size(lambda cams: scene.render(cams, background=torch.ones(3), normals=False).alpha[..., 0],
                      world_subject(metrics["prompt"]))
    return {"run": run_dir.name, **size, "iou": metrics.get("iou")}


def teacher_size(objects: list[str], cfgs: list[float], steps: int = 30, seed: int = 0) -> list[dict]:
    """The shipped teacher's samples of red and blue ``objects`` (8 per caption), camera given, per CFG."""
    from ui3d.metrics.view_fidelity import view_fidelity
    from ui3d.teachers.builtin import BuiltinTeacher

    teacher = BuiltinTeacher.load()
    rows = []
    for name in objects:
        for cfg in cfgs:
            report = view_fidelity(teacher, [name], ["red", "blue"], per_caption=8, steps=steps, cfg=cfg, seed=seed,
                                   text_only=False)
            rows.append({"object": name, "cfg": cfg, "area_ratio": report["area_ratio_with_camera"],
                         "silhouette_iou": report["silhouette_iou_with_camera"]})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("teacher")
    t.add_argument("--objects", default="cube,torus")
    t.add_argument("--cfgs", default="1.5,2.5,4,7.5")
    t.add_argument("--steps", type=int, default=30)
    r = sub.add_parser("runs")
    r.add_argument("run_dirs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.what == "teacher":
        rows = teacher_size(args.objects.split(","), [float(c) for c in args.cfgs.split(",")], args.steps)
    else:
        rows = [run_size(d) for d in args.run_dirs]
    for row in rows:
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))


if __name__ == "__main__":
    main()
