"""systems.size_bias: silhouette size against the truth, checked with the world's own renders."""

import pytest
import torch

from systems.size_bias import scene_size, silhouette_size
from ui3d.cameras import cameras_from_spherical
from ui3d.world.captions import parse_prompt
from ui3d.world.render import render_world


def test_silhouette_size_counts_area_and_overlap():
    truth = torch.zeros(2, 4, 4, dtype=torch.bool)
    truth[:, :2, :2] = True  # 4 pixels
    ours = torch.zeros_like(truth)
    ours[0, :2, :] = True  # 8 pixels, holding the truth: ratio 2, IoU 0.5
    ours[1, :1, :2] = True  # 2 pixels inside the truth: ratio 0.5, IoU 0.5
    size = silhouette_size(ours, truth)
    assert size["area_ratio"] == pytest.approx(1.25)  # the median of 2 and 0.5
    assert size["silhouette_iou"] == pytest.approx(0.5)


def test_the_truth_is_its_own_size_and_a_closer_camera_draws_it_larger():
    """A camera at distance d/s sees the object as an object s times larger seen from d: area ≈ s²."""
    cube = parse_prompt("a red cube").to_object()

    def at_distance_scale(scale):
        def render(cams):
            closer = cameras_from_spherical(cams.azimuth_deg, cams.elevation_deg, cams.distance / scale, cams.fovy_deg,
                                            (cams.height, cams.width))
            return render_world(cube, closer).alpha[..., 0]
        return render

    same = scene_size(at_distance_scale(1.0), cube)
    assert same == {"area_ratio": 1.0, "silhouette_iou": 1.0}
    larger = scene_size(at_distance_scale(1.2), cube)
    assert larger["area_ratio"] == pytest.approx(1.44, abs=0.12)
    assert 0.6 < larger["silhouette_iou"] < 0.8  # the truth inside a 1.44× larger silhouette: about 1/1.44
