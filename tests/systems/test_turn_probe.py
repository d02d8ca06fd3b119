"""systems.turn_probe: the object subset, and a short probe run end to end on a tiny training set."""

import json

import torch
from safetensors.torch import save_file

from systems.turn_probe import probe
from systems.turn_width import object_subset
from ui3d.teachers.builtin import camera_features
from ui3d.teachers.builtin_train import DATA_KIND


def test_object_subset_matches_whole_words():
    captions = ["a red cube", "a cube, side view", "a blue cubes", "a red cone"]
    assert object_subset(captions, "cube") == [0, 1]


def test_a_probe_trains_the_new_inputs_from_the_shipped_teacher(tmp_path):
    n = 4
    cams = camera_features(torch.tensor([0.0, 30.0, 60.0, 90.0]), torch.full((n,), 15.0), torch.full((n,), 1.75),
                           torch.full((n,), 55.0))
    path = tmp_path / "data.safetensors"
    images = torch.randint(0, 255, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    save_file({"images": images, "cameras": cams}, str(path),
              metadata={"kind": DATA_KIND, "captions": json.dumps(["a red cube", "a cube", "a red cone", "a blue cube"])})
    model, _ = probe(str(path), "rays", steps=2, batch=2)
    assert model.config.camera_rays
    assert model.unet.conv_in.weight[:, 3:].abs().max() > 0  # the zero-started ray channels learned
