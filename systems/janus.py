"""Janus check: does a generated object show its front from behind?

`python -m systems.janus RUN [RUN ...]`: for each finished run of a built-in prompt, the 16 orbit
renders of `judge_recognition` (albedo, 15° up, on mid-grey), and the judge's view head on the renders
seen from behind (|azimuth| ≥ 135°) and from the front (|azimuth| ≤ 45°). The "Janus rate" is the
share of back renders the judge calls "front view". The judge's view head is imperfect (62 % on
held-out renders), so the same is measured on the true object's renders at the same cameras. A
rate well above the truth's means the back looks like a front to the judge: two faces, or no view
cues at all (an object the same from every side scores high too), so look at the renders.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from systems.text_to_3d import grey_albedo, judged_orbit
from ui3d.prompt.views import view_suffixes


def view_rates(render, judge) -> dict[str, float]:
    """``render(cameras) -> rgb [B, H, W, 3]`` in [0, 1]; over :func:`judged_orbit`'s cameras, the
    judge's "front view" share among the back cameras (Janus rate) and among the front cameras (how
    well it sees the front at all)."""
    cams, verdicts = judged_orbit(render, judge)
    said, truth = verdicts["view"], view_suffixes(cams.azimuth_deg, cams.elevation_deg)

    def front_share(bucket: str) -> float:
        picked = [s for s, t in zip(said, truth) if t == bucket]
        return sum(s == "front view" for s in picked) / len(picked)

    return {"janus rate": front_share("back view"), "front seen as front": front_share("front view")}


def janus_rows(run_dirs: list[Path]) -> list[dict]:
    from systems.text_to_3d import world_subject
    from ui3d.io import read_json
    from ui3d.metrics.judge import Judge
    from ui3d.scene.base import load_scene
    from ui3d.world.render import render_world

    judge = Judge.load()
    rows = []
    for run in run_dirs:
        prompt = read_json(run / "metrics.json")["prompt"]
        subject = world_subject(prompt)
        if subject is None:
            raise SystemExit(f"janus: {run} is not a run of a built-in prompt")
        ours = view_rates(grey_albedo(load_scene(run / "scene")), judge)
        truth = view_rates(lambda c: render_world(subject, c, background=0.5).rgb, judge)
        rows.append({"run": run.name, "janus rate": ours["janus rate"], "truth's janus rate": truth["janus rate"],
                     "front seen as front": ours["front seen as front"],
                     "truth's front seen as front": truth["front seen as front"]})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = janus_rows(args.runs)
    print("| " + " | ".join(rows[0]) + " |\n" + "|---" * len(rows[0]) + "|")
    for r in rows:
        print("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in r.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
