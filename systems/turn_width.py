"""Does the teacher draw an object as wide as the camera sees it, turn by turn?

`python -m systems.turn_width [--weights W ...]`: for each object, samples of "a red OBJECT" (with
the view word of the camera) at a fixed elevation and distance and at each of a few azimuths,
camera given, against the true renders at the same cameras. A cube seen face-on (azimuth 0°) is
narrower than seen along its diagonal (45°; 12 against 14 pixels wide at 32², 15° up), so a
teacher that reads the camera draws it wider at 45°; one that does not draws every turn alike, and
the visual hull of such silhouettes is a rounded drum, not a cube (docs/benchmarks.md, "A teacher
blind to the cube's turn").

Width is the number of image columns the silhouette (saturated pixels,
:func:`ui3d.metrics.view_fidelity.saturated_mask`) covers, mean over the samples (a 32² image has
whole columns only; the mean over 16 samples resolves less than one).

`--data data.safetensors`: the training set's own widths by azimuth (does the data carry the turn?).
`--denoiser`: the one-step x̂0 of true renders given the true, a turned and no camera (does the
network read the azimuth?). `--spectrum`: which harmonics of the azimuth the renders change with.
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch
from torch import Tensor

AZIMUTHS = (0.0, 15.0, 30.0, 45.0)


def object_subset(captions: list[str], obj: str) -> list[int]:
    """Indices of the captions that name ``obj`` (a whole word)."""
    return [i for i, c in enumerate(captions) if obj in c.replace(",", " ").split()]


def probe_cameras(azimuths: Tensor, resolution: int = 32, elevation: float = 15.0):
    """Cameras at ``azimuths`` [n] (degrees), ``elevation`` up, mid-range distance (1.75) and field of
    view (55°): the cameras of every turn probe."""
    from ui3d.cameras import cameras_from_spherical

    n = len(azimuths)
    return cameras_from_spherical(azimuths.float(), torch.full((n,), elevation), torch.full((n,), 1.75),
                                  torch.full((n,), 55.0), resolution)


def red_renders(obj: str, cams) -> Tensor:
    """True renders [n, 3, r, r] in [0, 1] of a red ``obj`` on mid-grey at ``cams``."""
    from ui3d.world.captions import parse_prompt
    from ui3d.world.render import render_world

    return render_world(parse_prompt(f"a red {obj}").to_object(), cams, background=0.5, ss=2).rgb.permute(0, 3, 1, 2)


def rounded(row: dict, digits: int) -> dict:
    return {k: round(v, digits) if isinstance(v, float) else v for k, v in row.items()}


def silhouette_widths(masks: Tensor) -> list[int]:
    """Columns covered by each silhouette [B, H, W] (bool)."""
    return masks.any(dim=1).sum(dim=1).tolist()


@torch.no_grad()
def turn_widths(teacher, obj: str, azimuths=AZIMUTHS, n: int = 16, steps: int = 30, cfg: float = 2.5,
                elevation: float = 15.0, seed: int = 1, shown: list | None = None) -> list[dict]:
    """Per azimuth: mean silhouette width of ``n`` samples (camera given) and of the true renders,
    and the mean silhouette IoU. ``shown``, a list, receives per azimuth the true render and the
    samples ([1 + n, 3, r, r] in [0, 1]), the same noise at every azimuth."""
    from systems.size_bias import silhouette_size
    from ui3d.metrics.view_fidelity import saturated_mask
    from ui3d.prompt.views import view_suffixes, with_view_suffix
    from ui3d.teachers.protocol import guided_eps
    from ui3d.teachers.sampling import sample_images
    from ui3d.world.captions import parse_prompt
    from ui3d.world.render import render_world

    caption = f"a red {obj}"
    rows = []
    for az in azimuths:
        cams = probe_cameras(torch.full((n,), az), teacher.resolution, elevation)
        prompts = [with_view_suffix(caption, v) for v in view_suffixes(cams.azimuth_deg, cams.elevation_deg)]
        rendered = render_world([parse_prompt(caption).to_object()] * n, cams, background=1.0, ss=2)
        truth = rendered.alpha[..., 0] > 0.5
        images = sample_images(teacher, prompts, steps, cfg, torch.Generator().manual_seed(seed), cameras=cams,
                               guide=guided_eps)
        if shown is not None:
            shown.append(torch.cat([rendered.rgb[:1].permute(0, 3, 1, 2), images]))
        seen = saturated_mask(images)
        rows.append({"object": obj, "azimuth": az, "sample_width": statistics.mean(silhouette_widths(seen)),
                     "true_width": statistics.mean(silhouette_widths(truth)),
                     "silhouette_iou": silhouette_size(seen, truth)["silhouette_iou"]})
    return rows


@torch.no_grad()
def denoiser_turn_response(teacher, obj: str, azimuth: float = 45.0, turned: float = 0.0, timesteps=(300, 500, 700, 900),
                           n: int = 16, seed: int = 0) -> list[dict]:
    """Per timestep: the teacher's one-step x̂0 of true renders at ``azimuth`` (noised), given the
    true camera, the camera turned to ``turned`` and no camera: the mean |x̂0 change| when the
    camera turns and when it is dropped, and the x̂0 error (MSE against the render) of each. A
    denoiser that reads the azimuth changes when the camera turns and is closer to the truth with
    the true camera. Run it in fp32 (``autocast=False``): bf16 rounding moves x̂0 by 0.002–0.015,
    10–20 × what turning the camera of a teacher blind to the turn (v2 + harmonics) does."""
    def cameras(az: float):
        return probe_cameras(torch.full((n,), az), teacher.resolution)

    x0 = red_renders(obj, cameras(azimuth)) * 2 - 1
    emb = teacher.encode_prompts([f"a red {obj}"] * n)
    g = torch.Generator().manual_seed(seed)
    rows = []
    for step in timesteps:
        a_bar = teacher.alphas_cumprod[step]
        x_t = a_bar.sqrt() * x0 + (1 - a_bar).sqrt() * torch.randn(x0.shape, generator=g)
        t = torch.full((n,), step)
        x0_hat = {name: (x_t - (1 - a_bar).sqrt() * teacher.predict_eps(x_t, t, emb, cams)) / a_bar.sqrt()
                  for name, cams in (("true", cameras(azimuth)), ("turned", cameras(turned)), ("none", None))}
        rows.append({"object": obj, "t": step,
                     "change_when_turned": float((x0_hat["true"] - x0_hat["turned"]).abs().mean()),
                     "change_when_dropped": float((x0_hat["true"] - x0_hat["none"]).abs().mean()),
                     **{f"x0_mse_{name}": float((v - x0).pow(2).mean()) for name, v in x0_hat.items()}})
    return rows


def training_set_widths(data: str, obj: str, period: float = 90.0, bins: int = 5) -> list[dict]:
    """Mean silhouette width of the training set's images of ``obj`` in saturated colours, by
    azimuth folded into [0, period / 2] (a cube repeats every 90°), for cameras near the middle of
    the distance and field-of-view ranges (the two features within ±0.5): does the data carry the turn?"""
    from ui3d.io import read_safetensors
    from ui3d.metrics.view_fidelity import SATURATED_COLOURS, saturated_mask
    from ui3d.teachers.builtin_train import DATA_KIND

    tensors, meta = read_safetensors(data, DATA_KIND)
    captions = json.loads(meta["captions"])
    keep = [i for i in object_subset(captions, obj) if any(w in captions[i].split() for w in SATURATED_COLOURS)]
    cams = tensors["cameras"][keep]
    widths = torch.tensor(silhouette_widths(saturated_mask(tensors["images"][keep].float() / 255.0)), dtype=torch.float32)
    folded = torch.rad2deg(torch.atan2(cams[:, 0], cams[:, 1])) % period
    folded = torch.minimum(folded, period - folded)
    middle = (cams[:, 4].abs() < 0.5) & (cams[:, 5].abs() < 0.5)
    step = period / 2 / bins
    rows = []
    for k in range(bins):
        sel = middle & (folded >= k * step) & (folded < (k + 1) * step + (k == bins - 1))
        rows.append({"object": obj, "azimuth_from": k * step, "azimuth_to": (k + 1) * step, "images": int(sel.sum()),
                     "mean_width": float(widths[sel].mean()) if sel.any() else float("nan")})
    return rows


def azimuth_spectrum(obj: str, step_deg: float = 2.0, harmonics: int = 8) -> dict:
    """How the renders of a red ``obj`` change with the azimuth (15° up, distance 1.75, 55° field of
    view, mid-grey background), split by harmonic: the share of the per-pixel variance over a full
    turn carried by cos/sin(k·azimuth), k = 1 … ``harmonics``. A cube repeats every 90°, so all of
    its turn is in k = 4, 8, …, none in k = 1, which is all that sin/cos of the azimuth (the
    shipped teacher's camera input) can say linearly."""
    az = torch.arange(0.0, 360.0, step_deg)
    rgb = red_renders(obj, probe_cameras(az)).reshape(len(az), -1)
    power = torch.fft.rfft(rgb - rgb.mean(0), dim=0).abs().pow(2).sum(1)
    share = power / power.sum()
    return {"object": obj, "turn_variance": float((rgb - rgb.mean(0)).pow(2).mean()),
            **{f"h{k}": float(share[k]) for k in range(1, harmonics + 1)}}


def main(argv: list[str] | None = None) -> None:
    from ui3d.teachers.builtin import DEFAULT_TEACHER_PATH, BuiltinTeacher

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", nargs="+", default=[str(DEFAULT_TEACHER_PATH)])
    parser.add_argument("--objects", default="cube")
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--data", help="instead: the widths in a training set (data.safetensors) by azimuth")
    parser.add_argument("--denoiser", action="store_true",
                        help="instead: the one-step x̂0 of true 45° renders given the true, a turned (0°) and no camera")
    parser.add_argument("--grid", help="a PNG: per azimuth (rows), the true render and the first 6 samples, the "
                                       "same noise in every row")
    parser.add_argument("--spectrum", action="store_true",
                        help="instead: how each object's renders change with the azimuth, by harmonic")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.spectrum:
        for obj in args.objects.split(","):
            print(json.dumps(rounded(azimuth_spectrum(obj), 4)))
        return
    if args.data:
        for obj in args.objects.split(","):
            for row in training_set_widths(args.data, obj):
                print(json.dumps(rounded(row, 3)))
        return
    if args.denoiser:
        for weights in args.weights:
            teacher = BuiltinTeacher.load(weights, autocast=False)  # bf16 rounding would swamp the turn's change
            for obj in args.objects.split(","):
                for row in denoiser_turn_response(teacher, obj):
                    print(json.dumps(rounded(row, 5)))
        return
    shown: list = []
    rows_printed: list[dict] = []
    for weights in args.weights:
        teacher = BuiltinTeacher.load(weights)
        for obj in args.objects.split(","):
            for row in turn_widths(teacher, obj, n=args.n, shown=shown):
                rows_printed.append(row)
                print(json.dumps({"weights": weights, **rounded(row, 3)}), flush=True)
    if args.grid:
        from ui3d.images import save_grid

        labels = [f"{row['object']} {row['azimuth']:g} deg" for row in rows_printed]
        save_grid(torch.cat([images[:7] for images in shown]), args.grid, columns=7, scale=4, labels=labels)


if __name__ == "__main__":
    main()
