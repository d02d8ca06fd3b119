"""The muted background: a muted image per view in training, the plain colour in evaluation."""

import pytest
import torch

from ui3d.cameras import camera_rays, orbit_cameras
from ui3d.render.background import Background, BackgroundConfig, muted_backgrounds
from ui3d.scene.base import build_scene


def test_the_muted_background_module():
    background = Background(BackgroundConfig(kind="muted"))
    _, dirs = camera_rays(orbit_cameras(3, 16, elevation_deg=15.0))
    got = background(dirs, torch.Generator().manual_seed(7))
    torch.testing.assert_close(got, muted_backgrounds(3, 16, 16, torch.Generator().manual_seed(7)))
    assert torch.equal(background(dirs), torch.ones(3, 16, 16, 3))  # evaluation: white


def test_an_empty_gaussian_scene_shows_the_muted_background_in_training_and_white_otherwise():
    scene = build_scene("gaussians", {"background": {"kind": "muted"}, "num_init": 50}, torch.Generator().manual_seed(0))
    with torch.no_grad():
        scene.opacity_logits.fill_(-30.0)
    cams = orbit_cameras(3, 16, elevation_deg=15.0)
    with torch.no_grad():
        got = scene.render(cams, generator=torch.Generator().manual_seed(7)).rgb
        plain = scene.render(cams).rgb
    torch.testing.assert_close(got, muted_backgrounds(3, 16, 16, torch.Generator().manual_seed(7)), atol=1e-4, rtol=0)
    assert float((got[:, 0] - got[:, -1]).abs().amax()) > 0.05  # a vertical gradient, not one colour per view
    torch.testing.assert_close(plain, torch.ones_like(plain), atol=1e-4, rtol=0)


def test_kind_is_checked():
    with pytest.raises(ValueError, match="muted"):
        BackgroundConfig(kind="muddy")
