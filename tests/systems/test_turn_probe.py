"""systems.turn_probe: the object subset, the controlled set, and a short probe run end to end."""

import json

import torch
from safetensors.torch import save_file

from systems.turn_probe import controlled_images, probe, training_images
from systems.turn_width import object_subset, silhouette_widths
from ui3d.teachers.builtin import camera_features
from ui3d.teachers.builtin_train import DATA_KIND


def test_object_subset_matches_whole_words():
    captions = ["a red cube", "a cube, side view", "a blue cubes", "a red cone"]
    assert object_subset(captions, "cube") == [0, 1]


def test_the_controlled_set_turns_the_cube_and_nothing_else():
    images, captions, cams = controlled_images("cube", step_deg=45.0)
    assert images.shape == (8, 3, 32, 32) and images.dtype == torch.uint8 and len(captions) == 8
    assert captions[0].startswith("a red cube,") and "view" in captions[0]
    azimuths = torch.rad2deg(torch.atan2(cams[:, 0], cams[:, 1])) % 360
    torch.testing.assert_close(azimuths, torch.arange(0.0, 360.0, 45.0), atol=1e-3, rtol=0)
    assert torch.allclose(cams[:, 2:], cams[:1, 2:])  # elevation, distance, field of view, "given": fixed
    background = (images.float() / 255 - 0.5).abs().sum(1) < 0.02
    widths = silhouette_widths(~background)
    assert widths[0] < widths[1] and widths[0] == widths[2] and widths[1] == widths[3]  # face-on / diagonal


def test_a_probe_trains_the_new_inputs_from_the_shipped_teacher(tmp_path):
    n = 4
    cams = camera_features(torch.tensor([0.0, 30.0, 60.0, 90.0]), torch.full((n,), 15.0), torch.full((n,), 1.75),
                           torch.full((n,), 55.0))
    path = tmp_path / "data.safetensors"
    images = torch.randint(0, 255, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    save_file({"images": images, "cameras": cams}, str(path),
              metadata={"kind": DATA_KIND, "captions": json.dumps(["a red cube", "a cube", "a red cone", "a blue cube"])})
    data = training_images(str(path), "cube")
    assert data[0].shape[0] == 3 and data[1] == ["a red cube", "a cube", "a blue cube"]
    model, _ = probe(*data, "rays", steps=2, batch=2)
    assert model.config.camera_rays
    assert model.unet.conv_in.weight[:, 3:].abs().max() > 0  # the zero-started ray channels learned
    model, _ = probe(*data, "harmonics", steps=2, batch=2)
    assert model.unet.class_embedding.linear_1.weight[:, -8:].abs().max() > 0  # so did the harmonics' columns


def test_turned_pairs_differ_only_by_the_turn_of_camera_and_light():
    from systems.turn_probe import turned_pairs
    from ui3d.cameras import cameras_from_spherical, with_turned_twins

    images, captions, cams = turned_pairs("cube", 3, turn_deg=45.0, seed=1)
    first, second = cams[:3], cams[3:]
    az = lambda c: torch.rad2deg(torch.atan2(c[:, 0], c[:, 1]))  # noqa: E731
    torch.testing.assert_close((az(second) - az(first)) % 360, torch.full((3,), 45.0), atol=1e-3, rtol=0)
    torch.testing.assert_close(second[:, 2:], first[:, 2:])  # elevation, distance, field of view
    assert [c.split(",")[0] for c in captions[:3]] == [c.split(",")[0] for c in captions[3:]]  # same object words
    assert torch.equal(images[:3, :, 0, 0], images[3:, :, 0, 0])  # same background (a corner pixel)
    assert (images[:3].float() - images[3:].float()).abs().mean() > 1  # the cube turned
    cam = cameras_from_spherical(torch.tensor([10.0]), torch.tensor([20.0]), torch.tensor([1.5]), torch.tensor([50.0]), 8,
                                 light_pos=torch.tensor([[1.0, 0.0, 0.5]]))
    twins = with_turned_twins(cam, 90.0)  # the light turns with the camera, the way the azimuth turns
    torch.testing.assert_close(twins.light_pos, torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]]), atol=1e-6, rtol=0)
    torch.testing.assert_close(twins.azimuth_deg, torch.tensor([10.0, 100.0]))
    torch.testing.assert_close(twins.c2w[0], cam.c2w[0])  # the first of each pair is the camera as it was


def test_a_paired_probe_runs_whole_pairs():
    from systems.turn_probe import turned_pairs

    model, _ = probe(*turned_pairs("cube", 2), "harmonics", steps=2, batch=2, paired=True)
    assert model.unet.class_embedding.linear_1.weight[:, -8:].abs().max() > 0
