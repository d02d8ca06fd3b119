"""Can a camera input teach the teacher an object's turn? A short, focused fine-tune to find out.

`python -m systems.turn_probe --data runs/teacher_v2c/data.safetensors --inputs rays --steps 400`:
the shipped teacher fine-tuned on the training set's images of one object (default: the cube, every
colour) with one way of feeding it the camera, then :func:`systems.turn_width.turn_widths` of the
result. The shipped teacher draws a cube equally wide at every azimuth although its training images
are 13 px wide face-on and 16 px along the diagonal; this asks which input lets it learn that
quickly, before a full training run is spent on one (docs/benchmarks.md, "A teacher blind to the
cube's turn").

- ``features``: the shipped camera input as it is (7 numbers into the timestep embedding);
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

INPUTS = {"features": {}, "rays": {"camera_rays": True}}
PRESET = Path(__file__).resolve().parents[1] / "configs" / "teacher" / "builtin_v2.yaml"


def probe(data: str, inputs: str, obj: str = "cube", steps: int = 400, batch: int = 32, lr: float = 5e-4,
          seed: int = 0, t_min: int = 0):
    """The fine-tuned model (raw weights, no EMA) and its training seconds. ``t_min`` > 0 trains only
    at timesteps t ≥ t_min, where the image is mostly noise and only the camera can say which way
    the object is turned."""
    from systems.turn_width import object_subset
    from ui3d.diffusion.schedules import VPSchedule
    from ui3d.io import read_safetensors
    from ui3d.teachers.builtin import BuiltinTeacherModel, bf16_is_fast, load_teacher_model
    from ui3d.config import load_config
    from ui3d.teachers.builtin_train import DATA_KIND, TeacherTrainConfig, denoising_loss

    shipped, _ = load_teacher_model()
    model = BuiltinTeacherModel(dataclasses.replace(shipped.config, **INPUTS[inputs]), shipped.tokenizer)
    model.load_warm_start(shipped.state_dict())
    tensors, meta = read_safetensors(data, DATA_KIND)
    captions = json.loads(meta["captions"])
    keep = torch.tensor(object_subset(captions, obj))
    images, cameras = tensors["images"][keep], tensors["cameras"][keep]
    ids_all = model.tokenizer([captions[i] for i in keep.tolist()])
    empty = model.tokenizer([""])
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    schedule = VPSchedule.scaled_linear(model.config.num_train_timesteps)
    gen = torch.Generator().manual_seed(seed)
    recipe = load_config(TeacherTrainConfig, PRESET)  # its dropouts and loss weighting, on one object
    start = time.time()
    for _ in range(steps):
        idx = torch.randint(0, len(keep), (batch,), generator=gen)
        t = torch.randint(t_min, model.config.num_train_timesteps, (batch,), generator=gen) if t_min else None
        ids = ids_all[idx].clone()
        ids[torch.rand(batch, generator=gen) < recipe.cond_dropout] = empty
        camera = cameras[idx] * (torch.rand(batch, generator=gen) >= recipe.camera_dropout)[:, None]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_is_fast("cpu")):
            loss = denoising_loss(model, schedule, images[idx].float() / 127.5 - 1.0, model.text_encoder(ids), gen,
                                  recipe.min_snr_gamma, t=t, camera=camera)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval(), time.time() - start


def main(argv: list[str] | None = None) -> None:
    from systems.turn_width import rounded, turn_widths
    from ui3d.teachers.builtin import BuiltinTeacher

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a training set made by `ui3d teacher train` (data.safetensors)")
    parser.add_argument("--inputs", choices=sorted(INPUTS), required=True)
    parser.add_argument("--object", default="cube")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--t-min", type=int, default=0, help="train only at timesteps >= this (of 1000)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model, seconds = probe(args.data, args.inputs, args.object, args.steps, args.batch, args.lr, t_min=args.t_min)
    for row in turn_widths(BuiltinTeacher(model), args.object):
        print(json.dumps({"inputs": args.inputs, "steps": args.steps, "t_min": args.t_min,
                          "train_seconds": round(seconds, 1),
                          **rounded(row, 3)}), flush=True)


if __name__ == "__main__":
    main()
