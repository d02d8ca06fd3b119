"""View fidelity: the saturated-pixel silhouette of a sample against the true render at its camera."""

import pytest
import torch

from ui3d.cameras import sample_random_cameras
from ui3d.metrics.view_fidelity import SATURATED_COLOURS, saturated_mask, view_fidelity
from ui3d.render.background import muted_backgrounds
from ui3d.world.captions import parse_prompt
from ui3d.world.dataset import dataset_cameras
from ui3d.world.render import render_world


@pytest.mark.parametrize("colour", SATURATED_COLOURS)
def test_saturated_pixels_are_the_silhouette_on_muted_backgrounds(colour):
    g = torch.Generator().manual_seed(0)
    cams = sample_random_cameras(4, 32, dataset_cameras(), g)
    out = render_world(parse_prompt(f"a {colour} mug").to_object(), cams, background=0.0, ss=2)
    background = muted_backgrounds(4, 32, 32, g).permute(0, 3, 1, 2)
    images = out.rgb.permute(0, 3, 1, 2) + (1 - out.alpha.permute(0, 3, 1, 2)) * background
    truth = out.alpha[..., 0] > 0.5
    seen = saturated_mask(images)
    assert float((seen & truth).sum() / (seen | truth).sum()) > 0.9
    # a white object has no saturated pixels: this measure leaves white, grey, black and brown out
    white = render_world(parse_prompt("a white mug").to_object(), cams, background=1.0, ss=2).rgb.permute(0, 3, 1, 2)
    assert saturated_mask(white).float().mean() < 0.01


def test_a_teacher_that_draws_the_truth_at_the_camera_scores_one():
    """The camera-matched oracle's DDIM samples are the true renders at the cameras."""
    from ui3d.teachers.oracle import load_oracle

    teacher = load_oracle("exact-camera")
    report = view_fidelity(teacher, ["cube", "cone"], ["red", "blue"], per_caption=1, steps=10, text_only=False)
    assert report["samples"] == 4 and report["silhouette_iou_with_camera"] > 0.9
    assert report["area_ratio_with_camera"] == pytest.approx(1.0, abs=0.1)
    assert set(report["per_object_with_camera"]) == {"cube", "cone"} and "silhouette_iou_without_camera" not in report
