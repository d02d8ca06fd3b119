"""Which way does each shading mode pull a scene's opacity where the true object is?

`python -m systems.shading_pull RUN_DIR [--steps 60]`: continues a finished `ui3d generate` run (a
copy of it, in a temporary folder) for ``steps`` more steps twice, once with every step lambertian and
once with every step textureless (white albedo), the same seed, and reports for each the mean
rendered opacity inside and outside the true object's silhouette at 16 fixed cameras, before and
after. A built-in prompt only (the world has its truth).

DreamFusion's textureless steps keep geometry from hiding in the texture. But a white-shaded render
of a gray or dark object is brighter than every image of it the teacher knows, and the scene can
darken it only by thinning the surface to show the (darker) background: with an exact teacher that
empties the scene (systems/resolve.py). This measures the same pull with a learned teacher.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import torch


@torch.no_grad()
def opacity_split(scene, subject, cams) -> dict[str, float]:
    """Mean rendered opacity inside and outside the true silhouette at ``cams``."""
    from ui3d.world.render import render_world

    truth = render_world([subject] * len(cams), cams).alpha[..., 0] > 0.5
    alpha = scene.render(cams, shading="albedo", background=torch.zeros(3), normals=False).alpha[..., 0]
    return {"opacity_inside": float(alpha[truth].mean()), "opacity_outside": float(alpha[~truth].mean())}


def continue_run(run_dir: Path, shading: str, steps: int) -> dict:
    """A copy of ``run_dir`` trained ``steps`` more with one shading mode: its opacity split before and after."""
    from dataclasses import replace

    from systems.text_to_3d import TextTo3DConfig, prepare, train, world_subject
    from systems.turn_width import probe_cameras
    from ui3d.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "run"
        shutil.copytree(run_dir, copy)
        cfg = load_config(TextTo3DConfig, str(copy / "config.yaml"), [])
        cfg = replace(cfg, steps=cfg.steps + steps, textureless_prob=1.0 if shading == "textureless" else 0.0,
                      albedo_warmup=0, check_teacher=False)
        job = prepare(cfg, copy, resume=True)
        # 16 cameras around the object, 15° up, mid distance and field of view
        subject, cams = world_subject(cfg.prompt), probe_cameras(torch.arange(16) * 22.5, cfg.resolution)
        before, first = opacity_split(job.scene, subject, cams), len(job.log)
        train(job, copy, progress=False)
        after = opacity_split(job.scene, subject, cams)
        used = sorted({row["shading"] for row in job.log[first:]})
    return {"shading": shading, "steps_taken_with": used, **{f"{k}_before": v for k, v in before.items()},
            **{f"{k}_after": v for k, v in after.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args(argv)
    for shading in ("lambertian", "textureless"):
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v
                          for k, v in continue_run(Path(args.run_dir), shading, args.steps).items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
