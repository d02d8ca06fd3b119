"""The turntable: one full turn, rendered small, upscaled to the video's size."""

import numpy as np
import torch
from torch import nn

from ui3d.export.video import TURNTABLE_FPS, turntable_frames
from ui3d.render.types import RenderOutput


class AzimuthColour(nn.Module):
    """Renders each camera as a flat grey whose level is its azimuth: (azimuth + 180) / 360."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.render_sizes = []

    @property
    def device(self) -> torch.device:  # the Scene protocol's
        return self.dummy.device

    def render(self, cams, shading="albedo", background=None, normals=True):
        self.render_sizes.append((cams.height, cams.width))
        level = ((cams.azimuth_deg + 180.0) / 360.0)[:, None, None, None]
        rgb = level.expand(len(cams), cams.height, cams.width, 3)
        return RenderOutput(rgb=rgb, alpha=torch.ones_like(rgb[..., :1]), depth=torch.ones_like(rgb[..., :1]),
                            normal=torch.zeros_like(rgb))


def test_turntable_is_one_turn_rendered_small_and_upscaled():
    scene = AzimuthColour()
    frames = turntable_frames(scene)
    assert frames.shape == (3 * TURNTABLE_FPS, 256, 256, 3) and frames.dtype == np.uint8
    assert set(scene.render_sizes) == {(128, 128)}  # rendered at 128², a quarter of the pixels
    azimuths = 360.0 * np.arange(len(frames)) / len(frames)
    expected = np.round(((azimuths + 180.0) % 360.0) / 360.0 * 255.0)
    np.testing.assert_allclose(frames[:, 128, 128, 0], expected, atol=1)  # evenly spaced, one full turn
    assert (frames == frames[:, :1, :1]).all()  # bicubic upscaling of a flat image stays flat


def test_turntable_never_renders_above_the_video_size():
    scene = AzimuthColour()
    frames = turntable_frames(scene, frames=3, size=16)
    assert frames.shape == (3, 16, 16, 3) and set(scene.render_sizes) == {(16, 16)}
