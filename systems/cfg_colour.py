"""Where does CFG move an object's colour? The teacher's guided x̂0 over the object's own pixels.

`python -m systems.cfg_colour --prompt "a gray house" [--scales 0,1,2.5,4]`: true renders of a
built-in prompt at 16 random cameras on muted backgrounds, noised at a few timesteps; for each CFG
scale, the mean RGB of the teacher's guided one-step x̂0 over the render's neutral pixels (opaque,
channels within 0.06 of each other: a gray object's body). CFG is ε_u + s·(ε_c − ε_u): it pushes x̂0
away from the unconditional prediction, and a gray object's unconditional prediction is the warm
mean of every object, so its gray goes cyan as s grows (docs/benchmarks.md, "Textureless steps
thin dark objects"; the teal walls of the gray house).
"""

from __future__ import annotations

import argparse

import torch

TIMESTEPS = (200, 400, 600, 800)


@torch.no_grad()
def guided_colours(teacher, prompt: str, scales=(0.0, 1.0, 2.5, 4.0), timesteps=TIMESTEPS, n: int = 16,
                   seed: int = 0) -> list[dict]:
    """Per timestep and scale: the mean RGB of the guided x̂0 over the renders' neutral pixels, and
    the truth's mean there."""
    from ui3d.cameras import cameras_from_spherical
    from ui3d.prompt.views import view_suffixes, with_view_suffix
    from ui3d.render.background import muted_backgrounds
    from ui3d.teachers.protocol import cfg_combine
    from ui3d.world.captions import parse_prompt
    from ui3d.world.render import render_world

    g = torch.Generator().manual_seed(seed)
    r = teacher.resolution
    cams = cameras_from_spherical(torch.rand(n, generator=g) * 360, torch.rand(n, generator=g) * 40,
                                  torch.full((n,), 1.75), torch.full((n,), 55.0), r)
    backgrounds = muted_backgrounds(n, r, r, g)  # [n, r, r, 3]
    out = render_world([parse_prompt(prompt).to_object()] * n, cams, background=backgrounds, ss=2)
    rgb = out.rgb.permute(0, 3, 1, 2)
    neutral = (rgb.max(1).values - rgb.min(1).values < 0.06) & (out.alpha[..., 0] > 0.9)
    if not neutral.any():
        raise ValueError(f"'{prompt}': no neutral (gray, white or black) pixels to measure")

    def mean_rgb(images: torch.Tensor) -> list[float]:
        return [round(float(images[:, c][neutral].mean()), 4) for c in range(3)]

    truth = mean_rgb(rgb)

    views = [with_view_suffix(prompt, v) for v in view_suffixes(cams.azimuth_deg, cams.elevation_deg)]
    cond, uncond = teacher.encode_prompts(views), teacher.encode_prompts([""] * n)
    x0 = rgb * 2 - 1
    rows = []
    for step in timesteps:
        a_bar = teacher.alphas_cumprod[step]
        x_t = a_bar.sqrt() * x0 + (1 - a_bar).sqrt() * torch.randn(x0.shape, generator=g)
        t = torch.full((n,), step)
        eps_c, eps_u = teacher.predict_eps(x_t, t, cond, cams), teacher.predict_eps(x_t, t, uncond, cams)
        for s in scales:
            x0_hat = (x_t - (1 - a_bar).sqrt() * cfg_combine(eps_u, eps_c, s)) / a_bar.sqrt()
            rows.append({"t": step, "cfg": s, "x0_rgb": mean_rgb(x0_hat.clamp(-1, 1) * 0.5 + 0.5), "truth_rgb": truth})
    return rows


def main(argv: list[str] | None = None) -> int:
    from ui3d.teachers.builtin import BuiltinTeacher

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", default="a gray house")
    parser.add_argument("--scales", default="0,1,2.5,4")
    parser.add_argument("--weights", default=None, help="teacher safetensors (default: the shipped one)")
    args = parser.parse_args(argv)
    teacher = BuiltinTeacher.load(args.weights, autocast=False) if args.weights else BuiltinTeacher.load(autocast=False)
    rows = guided_colours(teacher, args.prompt, tuple(float(s) for s in args.scales.split(",")))
    print(f"{args.prompt}: mean RGB of the guided x̂0 over the neutral pixels (truth {rows[0]['truth_rgb']})")
    print("| t | " + " | ".join(f"CFG {r['cfg']:g}" for r in rows if r["t"] == rows[0]["t"]) + " |")
    print("|---" * (1 + sum(r["t"] == rows[0]["t"] for r in rows)) + "|")
    for t in dict.fromkeys(r["t"] for r in rows):
        print(f"| {t} | " + " | ".join(str(tuple(r["x0_rgb"])) for r in rows if r["t"] == t) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
