"""Does guidance on the camera make the built-in teacher draw the view the camera sees?

`python -m systems.camera_guidance --out runs/camera_guidance.json` measures the teacher's view
fidelity (:func:`~ui3d.metrics.view_fidelity.view_fidelity`, one sample per caption) with plain CFG
(every branch sees the camera: what the guidance uses) and with two camera guidances:

- ``uncond_without_camera``: ε(∅, ∅) + s·(ε(text, c) − ε(∅, ∅)): CFG also pushes along the camera;
- ``camera_scale`` s_cam: ε(∅, c) + s·(ε(text, c) − ε(∅, c)) + s_cam·(ε(text, c) − ε(text, ∅)),
  three forwards.

Measured (assets/BUILTIN_TEACHER.md): no gain; the guidance keeps plain CFG.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

from torch import Tensor

from ui3d.cameras import Cameras
from ui3d.teachers.protocol import Teacher, cfg_combine, guided_eps


def _per_sample(uncond: Tensor, n: int) -> Tensor:
    return uncond.expand(n, *uncond.shape[1:])


def uncond_without_camera(teacher: Teacher, x_t: Tensor, t: Tensor, cond: Tensor, uncond: Tensor, scale: float,
                          cameras: Cameras | None = None) -> Tensor:
    """CFG whose unconditional branch has neither text nor camera."""
    if cameras is None:
        return guided_eps(teacher, x_t, t, cond, uncond, scale)
    eps_u = teacher.predict_eps(x_t, t, _per_sample(uncond, len(x_t)), None)
    return cfg_combine(eps_u, teacher.predict_eps(x_t, t, cond, cameras), scale)


def with_camera_scale(teacher: Teacher, x_t: Tensor, t: Tensor, cond: Tensor, uncond: Tensor, scale: float,
                      cameras: Cameras | None = None, *, camera_scale: float) -> Tensor:
    """Plain CFG plus s_cam·(ε(text, c) − ε(text, ∅)): a separate scale on the camera (three forwards)."""
    if cameras is None or camera_scale == 0.0:
        return guided_eps(teacher, x_t, t, cond, uncond, scale, cameras=cameras)
    eps_u, eps_c, eps_n = (teacher.predict_eps(x_t, t, emb, cams)
                           for emb, cams in ((_per_sample(uncond, len(x_t)), cameras), (cond, cameras), (cond, None)))
    return cfg_combine(eps_u, eps_c, scale) + camera_scale * (eps_c - eps_n)


VARIANTS = {
    "plain CFG": None,
    "uncond_without_camera": uncond_without_camera,
    **{f"camera_scale={s:g}": partial(with_camera_scale, camera_scale=s) for s in (1.0, 3.0, 6.0)},
}


def main(argv: list[str] | None = None) -> int:
    from ui3d.teachers.loading import load_teacher
    from ui3d.metrics.view_fidelity import view_fidelity
    from ui3d.world.objects import OBJECTS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--teacher", default="builtin")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args(argv)
    teacher = load_teacher(args.teacher)
    report = {}
    for name, guide in VARIANTS.items():
        start = time.perf_counter()
        r = view_fidelity(teacher, list(OBJECTS), per_caption=1, steps=args.steps, cfg=4.0, seed=0,
                          text_only=False, guide=guide)
        report[name] = {"silhouette_iou": r["silhouette_iou_with_camera"], "area_ratio": r["area_ratio_with_camera"],
                        "seconds": time.perf_counter() - start}
        print(f"{name}: IoU {report[name]['silhouette_iou']:.3f}, area ratio {report[name]['area_ratio']:.2f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
