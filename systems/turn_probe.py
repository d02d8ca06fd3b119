"""Can a camera input teach the teacher an object's turn? A short, focused fine-tune to find out.

`python -m systems.turn_probe --inputs harmonics --controlled --steps 300`: the v2 teacher with
the sin/cos camera input (``assets/builtin_teacher_v2_sincos.safetensors``, the default until
2026-12-03) fine-tuned on images of one object (default: the cube) with one way of feeding it the
camera, then :func:`systems.turn_width.turn_widths` and
:func:`systems.turn_width.denoiser_turn_response` of the result. That teacher draws a cube equally
wide at every azimuth although its training images are 13 px wide face-on and 16 px along the
diagonal; this asks which input lets it learn that quickly, before a full training run is spent on
one (docs/benchmarks.md, "A teacher blind to the cube's turn").

The images: ``--data data.safetensors``, the training set's images of the object (every colour,
background and camera); or ``--controlled``, the object in red at every whole degree of azimuth and
nothing else varied (15° up, distance 1.75, 55° field of view, mid-grey background), where the
turn is all there is left to learn; or ``--pairs N``, N training-style images of the object each
also rendered turned by 45° (:func:`turned_pairs`), trained pair by pair.

- ``features``: that teacher's camera input as it is (7 numbers into the timestep embedding);
- ``harmonics``: those plus sin/cos of 2, 3, 4 × azimuth and 2 × elevation (``camera_dim`` 15);
- ``rays``: the 7 numbers plus the camera's ray at every pixel as 6 more input channels
  (``camera_rays``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch
from torch import Tensor

START = "builtin_teacher_v2_sincos.safetensors"  # in assets/: the 7-input teacher every probe starts from
INPUTS = {"features": {}, "harmonics": {"camera_dim": 15}, "rays": {"camera_rays": True}}  # changes to START's
PRESET = Path(__file__).resolve().parents[1] / "configs" / "teacher" / "builtin_v2.yaml"


def training_images(data: str, obj: str) -> tuple[Tensor, list[str], Tensor]:
    """The training set's images (uint8), captions and camera features of ``obj``."""
    from systems.turn_width import object_subset
    from ui3d.io import read_safetensors
    from ui3d.teachers.builtin_train import DATA_KIND

    tensors, meta = read_safetensors(data, DATA_KIND)
    captions = json.loads(meta["captions"])
    keep = object_subset(captions, obj)
    return tensors["images"][keep], [captions[i] for i in keep], tensors["cameras"][keep]


def controlled_images(obj: str, step_deg: float = 1.0) -> tuple[Tensor, list[str], Tensor]:
    """``obj`` in red at every ``step_deg`` of azimuth, all else fixed (the cameras of
    :func:`systems.turn_width.turn_widths`): uint8 images, captions with the view word, camera features."""
    from systems.turn_width import probe_cameras, red_renders
    from ui3d.prompt.views import view_suffixes, with_view_suffix
    from ui3d.teachers.builtin import camera_features

    cams = probe_cameras(torch.arange(0.0, 360.0, step_deg))
    images = (red_renders(obj, cams) * 255).round().clamp(0, 255).to(torch.uint8)
    captions = [with_view_suffix(f"a red {obj}", v) for v in view_suffixes(cams.azimuth_deg, cams.elevation_deg)]
    return images, captions, camera_features(cams.azimuth_deg, cams.elevation_deg, cams.distance, cams.fovy_deg)


def turned_pairs(obj: str, n_pairs: int, turn_deg: float = 45.0, seed: int = 0) -> tuple[Tensor, list[str], Tensor]:
    """``n_pairs`` training-style scenes of ``obj`` (every colour, material, muted background and
    camera of the world's sampler), each also seen with the camera and its light turned by
    ``turn_deg`` (:class:`ui3d.world.dataset.WorldDatasetConfig` ``turned_pairs_deg``): uint8 images
    [2n, 3, 32, 32] (the scenes, then the same turned), captions, camera features."""
    from ui3d.teachers.builtin import camera_features
    from ui3d.world.dataset import WorldDatasetConfig, sample_batch

    cfg = WorldDatasetConfig(objects=(obj,), background_kind="muted", turned_pairs_deg=turn_deg)
    b = sample_batch(2 * n_pairs, torch.Generator().manual_seed(seed), cfg)
    images = ((b.images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    c = b.cameras
    return images, b.captions, camera_features(c.azimuth_deg, c.elevation_deg, c.distance, c.fovy_deg)


def probe(images: Tensor, captions: list[str], cameras: Tensor, inputs: str, steps: int = 400, batch: int = 32,
          lr: float = 5e-4, seed: int = 0, t_min: int = 0, paired: bool = False):
    """The :data:`START` teacher fine-tuned on ``images`` (uint8) with ``inputs``: the model (raw weights,
    no EMA) and its training seconds. ``t_min`` > 0 trains only at timesteps t ≥ t_min, where the
    image is mostly noise and only the camera can say which way the object is turned. ``paired``:
    the images are :func:`turned_pairs`, and a batch holds whole pairs, each pair with one timestep,
    one noise and one caption and camera dropout."""
    from ui3d.config import load_config
    from ui3d.diffusion.schedules import VPSchedule
    from ui3d.teachers.builtin import ASSETS_DIR, BuiltinTeacherModel, bf16_is_fast, load_teacher_model
    from ui3d.teachers.builtin_train import TeacherTrainConfig, denoising_loss, draw_batch, pair_partners

    start_model, _ = load_teacher_model(ASSETS_DIR / START)
    model = BuiltinTeacherModel(dataclasses.replace(start_model.config, **INPUTS[inputs]), start_model.tokenizer)
    model.load_warm_start(start_model.state_dict())
    ids_all = model.tokenizer(captions)
    empty = model.tokenizer([""])
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    schedule = VPSchedule.scaled_linear(model.config.num_train_timesteps)
    gen = torch.Generator().manual_seed(seed)
    recipe = load_config(TeacherTrainConfig, PRESET)  # its dropouts and loss weighting, on one object
    start = time.time()
    partners = pair_partners(len(images), len(images)) if paired else None  # turned_pairs: scenes, then twins
    for _ in range(steps):
        idx, draws, shared = draw_batch(len(images), batch, gen, partners)
        t = shared(torch.randint(t_min, model.config.num_train_timesteps, (draws,), generator=gen))
        eps = shared(torch.randn(draws, *images.shape[1:], generator=gen))
        ids = ids_all[idx].clone()
        ids[shared(torch.rand(draws, generator=gen)) < recipe.cond_dropout] = empty
        camera = cameras[idx] * (shared(torch.rand(draws, generator=gen)) >= recipe.camera_dropout)[:, None]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_is_fast("cpu")):
            loss = denoising_loss(model, schedule, images[idx].float() / 127.5 - 1.0, model.text_encoder(ids), gen,
                                  recipe.min_snr_gamma, t=t, camera=camera, eps=eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval(), time.time() - start


def main(argv: list[str] | None = None) -> None:
    from systems.turn_width import denoiser_turn_response, rounded, turn_widths
    from ui3d.teachers.builtin import BuiltinTeacher

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="a training set made by `ui3d teacher train` (data.safetensors)")
    source.add_argument("--controlled", action="store_true", help="the object in red, only the azimuth varied")
    source.add_argument("--pairs", type=int, help="this many training-style images of the object, each also "
                                                  "turned by 45 degrees, trained pair by pair")
    parser.add_argument("--inputs", choices=sorted(INPUTS), required=True)
    parser.add_argument("--object", default="cube")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--t-min", type=int, default=0, help="train only at timesteps >= this (of 1000)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.pairs:
        data, images = turned_pairs(args.object, args.pairs), f"{args.pairs} turned pairs"
    elif args.controlled:
        data, images = controlled_images(args.object), "controlled"
    else:
        data, images = training_images(args.data, args.object), "training set"
    model, seconds = probe(*data, args.inputs, args.steps, args.batch, args.lr, t_min=args.t_min,
                           paired=bool(args.pairs))
    run = {"inputs": args.inputs, "images": images, "steps": args.steps,
           "t_min": args.t_min, "train_seconds": round(seconds, 1)}
    for row in denoiser_turn_response(BuiltinTeacher(model, autocast=False), args.object):  # fp32: see turn_width
        print(json.dumps({**run, **rounded(row, 5)}), flush=True)
    for row in turn_widths(BuiltinTeacher(model), args.object):
        print(json.dumps({**run, **rounded(row, 3)}), flush=True)


if __name__ == "__main__":
    main()
