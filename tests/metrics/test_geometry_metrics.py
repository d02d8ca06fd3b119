import numpy as np
import pytest
import trimesh

from ui3d.metrics.geometry import (
    chamfer_distance,
    colour_error,
    evaluate_mesh,
    iou,
    mesh_iou,
    volume_scores,
    voxelize_mesh,
)
from ui3d.world import make_object, occupancy_grid


def test_iou_hand_computed():
    a = np.zeros((4, 4, 4), bool)
    b = np.zeros((4, 4, 4), bool)
    a[:2] = True  # 32 cells
    b[1:3] = True  # 32 cells, 16 shared
    assert iou(a, b) == pytest.approx(16 / 48)
    assert iou(a, a) == 1.0 and iou(a, ~a) == 0.0
    with pytest.raises(ValueError, match="shape"):
        iou(a, np.zeros((2, 2, 2), bool))


def test_volume_scores_split_the_iou_into_size_and_place():
    truth = np.zeros((4, 4, 4), bool)
    truth[:2] = True  # 32 cells
    larger = np.zeros_like(truth)
    larger[:3] = True  # 48 cells holding the truth: too large, nothing missed
    assert volume_scores(larger, truth) == (1.5, 1.0)
    shifted = np.roll(truth, 1, axis=0)  # same size, half of it in the wrong place
    assert volume_scores(shifted, truth) == (1.0, 0.5)
    ratio, covered = volume_scores(shifted, truth)
    assert iou(shifted, truth) == pytest.approx(covered / (ratio + 1 - covered))
    assert volume_scores(truth, np.zeros_like(truth)) == (0.0, 0.0)


def test_voxelised_box_has_the_right_volume():
    box = trimesh.creation.box((1.0, 0.5, 0.25))
    occ = voxelize_mesh(box.vertices, box.faces, resolution=32, bound=1.0)
    assert occ.sum() * (2 / 32) ** 3 == pytest.approx(0.125, rel=1e-6)  # cell centres land exactly
    assert occ[16, 16, 16] and not occ[0, 0, 0]


def test_mesh_iou_against_world_sphere_and_cube():
    sphere = trimesh.creation.icosphere(4, radius=0.4)
    assert mesh_iou(sphere.vertices, sphere.faces, occupancy_grid(make_object("sphere"), 48)) > 0.97
    big = trimesh.creation.box((0.8, 0.8, 0.8))
    # the world cube has half-extent 0.28: IoU = (0.56 / 0.8)^3
    assert mesh_iou(big.vertices, big.faces, occupancy_grid(make_object("cube"), 50)) == pytest.approx(0.343, abs=0.03)


def test_chamfer_grows_with_a_shift():
    sphere = trimesh.creation.icosphere(4, radius=0.4)
    pts = np.asarray(sphere.sample(5000, seed=0)) if "seed" in trimesh.sample.sample_surface.__code__.co_varnames else np.asarray(sphere.sample(5000))
    near = chamfer_distance(sphere.vertices, sphere.faces, pts)
    shifted = chamfer_distance(sphere.vertices + [0.1, 0, 0], sphere.faces, pts)
    assert near < 0.01 and shifted > 0.04


def test_colour_error_hand_computed():
    verts = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    cols = np.array([[1.0, 0, 0], [0.0, 1.0, 0]])
    pts = np.array([[0.1, 0, 0], [0.9, 0, 0]])
    truth = np.array([[1.0, 0, 0], [0.0, 0.5, 0]])
    mae, dist = colour_error(verts, cols, pts, truth)
    assert mae == pytest.approx(0.5 / 6) and dist == pytest.approx(0.25)
    mae255, _ = colour_error(verts, cols * 255, pts, truth)  # 0..255 colours are recognised
    assert mae255 == pytest.approx(mae)


def test_evaluate_mesh_of_the_true_shape():
    sphere = trimesh.creation.icosphere(4, radius=0.4)
    red = np.tile(make_object("sphere", "red").part_rgb().numpy(), (len(sphere.vertices), 1))
    m = evaluate_mesh(sphere.vertices, sphere.faces, red, make_object("sphere", "red"), resolution=32, samples=2000)
    assert m.iou > 0.95 and m.chamfer < 0.02 and m.colour_mae < 1e-6  # 2000 samples: ~0.03 apart
    assert m.volume_ratio == pytest.approx(1.0, abs=0.05) and m.truth_covered > 0.95
    big = trimesh.creation.icosphere(4, radius=0.5)  # (0.5 / 0.4)^3 = 1.95 × the volume, holding it all
    m = evaluate_mesh(big.vertices, big.faces, np.tile(red[:1], (len(big.vertices), 1)), make_object("sphere", "red"),
                      resolution=32, samples=2000)
    assert m.volume_ratio == pytest.approx(1.95, rel=0.08) and m.truth_covered == 1.0
