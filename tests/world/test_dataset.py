import pytest
import torch

from ui3d.prompt import view_suffix
from ui3d.world.captions import parse_prompt
from ui3d.world.dataset import WorldDataset, WorldDatasetConfig, sample_batch, sample_prompts

SMALL = WorldDatasetConfig(resolution=16, ss=1)


def test_same_seed_same_batch_and_different_seed_different_batch():
    a = WorldDataset(SMALL, seed=3, batch_size=6).batch(0)
    b = WorldDataset(SMALL, seed=3, batch_size=6).batch(0)
    c = WorldDataset(SMALL, seed=4, batch_size=6).batch(0)
    d = WorldDataset(SMALL, seed=3, batch_size=6).batch(1)
    assert torch.equal(a.images, b.images) and a.captions == b.captions
    assert torch.equal(a.cameras.c2w, b.cameras.c2w)
    assert not torch.equal(a.images, c.images) and a.captions != c.captions
    assert not torch.equal(a.images, d.images)
    first = next(iter(WorldDataset(SMALL, seed=3, batch_size=6)))
    assert torch.equal(first.images, a.images)


def test_batch_content_images_and_captions():
    cfg = WorldDatasetConfig(resolution=16, ss=1, p_view_suffix=1.0)
    batch = sample_batch(12, torch.Generator().manual_seed(0), cfg)
    assert batch.images.shape == (12, 3, 16, 16) and batch.alpha.shape == (12, 1, 16, 16)
    assert batch.images.min() >= -1.0 and batch.images.max() <= 1.0
    bg = batch.alpha.expand_as(batch.images) == 0
    assert torch.all(batch.images[bg] == 1.0)  # white background
    assert torch.all(batch.alpha.sum(dim=(1, 2, 3)) > 3)  # every image shows its object
    for caption, prompt, az, el in zip(
        batch.captions, batch.prompts, batch.cameras.azimuth_deg, batch.cameras.elevation_deg
    ):
        parsed = parse_prompt(caption)
        assert (parsed.object, parsed.colour, parsed.material) == (
            prompt.object,
            prompt.colour,
            prompt.material,
        )
        assert parsed.view == view_suffix(float(az), float(el)) == prompt.view
        assert caption.endswith(", " + prompt.view)


def test_word_probabilities_and_restrictions():
    cfg = WorldDatasetConfig(objects=("owl", "mug"), colours=("red",), p_colour=1.0, p_material=0.0)
    prompts = sample_prompts(40, torch.Generator().manual_seed(0), cfg)
    assert {p.object for p in prompts} == {"owl", "mug"}
    assert all(p.colour == "red" and p.material == "matte" and p.text.startswith("a red ") for p in prompts)
    bare = sample_prompts(
        40, torch.Generator().manual_seed(0), WorldDatasetConfig(p_colour=0.0, p_material=0.0)
    )
    assert all(len(p.text.split()) == 2 for p in bare)
    no_view = sample_batch(
        4, torch.Generator().manual_seed(0), WorldDatasetConfig(resolution=8, ss=1, p_view_suffix=0.0)
    )
    assert all("view" not in c for c in no_view.captions)


def test_config_errors():
    with pytest.raises(ValueError, match="dragon"):
        WorldDatasetConfig(objects=("dragon",))
    with pytest.raises(ValueError, match="p_colour"):
        WorldDatasetConfig(p_colour=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        sample_batch(0, torch.Generator(), SMALL)


def test_render_captions_shards_are_slices_of_the_whole_and_seeded():
    from ui3d.world.dataset import render_captions

    captions = ["a red cube", "a blue sphere", "a green torus", "a snowman"]
    whole = render_captions(captions, seed=5, resolution=16, ss=1)
    assert whole.shape == (4, 3, 16, 16) and whole.min() >= -1.0 and whole.max() <= 1.0
    assert torch.equal(whole[0, :, 0, 0], torch.ones(3))  # a corner pixel: the white background
    # every process of a data-parallel run draws the cameras of all captions, then renders its shard
    assert torch.equal(render_captions(captions, seed=5, resolution=16, ss=1, shard=slice(1, 3)), whole[1:3])
    assert not torch.equal(render_captions(captions, seed=6, resolution=16, ss=1), whole)


def test_render_pixels_is_the_world_render_channels_first_in_minus_one_one():
    from ui3d.cameras import orbit_cameras
    from ui3d.world import make_object, render_world
    from ui3d.world.dataset import render_pixels

    cams = orbit_cameras(2, 12)
    rgb = render_world(make_object("cone", "red"), cams, ss=1).rgb
    torch.testing.assert_close(render_pixels(make_object("cone", "red"), cams, ss=1), rgb.permute(0, 3, 1, 2) * 2 - 1)
