"""What a larger built-in teacher would cost per text-to-3D step: one guided forward (4 views × the
CFG pair = batch 8) of the built-in teacher's network at 32², 48² and 64² and with twice the
channels, side by side in one process, median of ``--repeats``. Untrained weights: this measures
cost, not quality.

`python -m systems.teacher_cost --repeats 15`
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace

import torch

from ui3d.teachers.builtin import CAMERA_WITH_HARMONICS, BuiltinTeacher, BuiltinTeacherConfig, BuiltinTeacherModel

SHIPPED = BuiltinTeacherConfig(camera_dim=CAMERA_WITH_HARMONICS)
CANDIDATES = {
    "32², channels 32-64-64 (shipped)": SHIPPED,
    "48², channels 32-64-64": replace(SHIPPED, resolution=48),
    "64², channels 32-64-64": replace(SHIPPED, resolution=64),
    "32², channels 64-128-128": replace(SHIPPED, channels=(64, 128, 128)),
    "64², channels 64-128-128": replace(SHIPPED, resolution=64, channels=(64, 128, 128)),
}


def forward_seconds(model: BuiltinTeacherModel, repeats: int, batch: int = 8) -> float:
    """Median seconds of one ``predict_eps`` at ``batch`` (the teacher's own precision rule)."""
    teacher = BuiltinTeacher(model)
    r = model.config.resolution
    x = torch.randn(batch, 3, r, r, generator=torch.Generator().manual_seed(0))
    t = torch.full((batch,), 500)
    cond = teacher.encode_prompts(["a red cube, front view"] * batch)
    times = []
    for i in range(repeats + 2):  # two warm-up calls
        start = time.perf_counter()
        teacher.predict_eps(x, t, cond)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    base = None
    print("| network | parameters | forward at batch 8 (median) | × shipped |\n|---|---|---|---|")
    for name, config in CANDIDATES.items():
        torch.manual_seed(0)
        model = BuiltinTeacherModel(config)
        seconds = forward_seconds(model, args.repeats)
        base = base or seconds
        params = sum(p.numel() for p in model.parameters())
        print(f"| {name} | {params / 1e6:.2f} M | {seconds * 1e3:.1f} ms | {seconds / base:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
