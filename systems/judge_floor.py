"""How well the judge scores true renders: the ceiling of the teacher card's per-colour accuracy.

    python -m systems.judge_floor --per-caption 8 --seeds 1,2

Renders every object × colour caption of the built-in world at random dataset cameras (seed per
pass), on muted and on white backgrounds, and reports the share the judge gets right, object and
colour both (as `ui3d teacher eval`'s per-colour figure does), per colour word. A teacher whose
samples are judged as well as the true renders has reached what this judge can tell.
"""

from __future__ import annotations

import argparse
import json

import torch


def judge_on_renders(per_caption: int = 8, seeds: tuple[int, ...] = (1, 2), backgrounds: str = "muted") -> dict:
    """Per colour word: the share of true renders whose object and colour the shipped judge names."""
    from ui3d.metrics.judge import DEFAULT_JUDGE_PATH, Judge, object_colour_captions, share_right_by
    from ui3d.world.dataset import render_captions

    judge = Judge.load(DEFAULT_JUDGE_PATH)
    rows = [r for r in object_colour_captions() for _ in range(per_caption)]
    colours, right = [], []
    for seed in seeds:
        pred = judge.predict(render_captions([r[0] for r in rows], seed, background_kind=backgrounds),
                             colour_words_only=True)
        for obj, colour, (_, true_obj, true_colour) in zip(pred["object"], pred["colour"], rows, strict=True):
            colours.append(true_colour)
            right.append(obj == true_obj and colour == true_colour)
    return {"backgrounds": backgrounds, "renders": len(right), "both_accuracy": round(sum(right) / len(right), 3),
            "per_colour_both_accuracy": share_right_by(colours, right)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-caption", type=int, default=8)
    parser.add_argument("--seeds", default="1,2")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    for backgrounds in ("muted", "plain"):
        print(json.dumps(judge_on_renders(args.per_caption, seeds, backgrounds)))


if __name__ == "__main__":
    main()
