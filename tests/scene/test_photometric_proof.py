"""The proof without a teacher (slow): fit each backend to 32 analytic views of built-in objects,
export the mesh, and check it against the ground truth. Run with ``pytest -m slow``; the fast
versions are in test_nerf_scene.py and test_gaussian_scene.py. Measured numbers: docs/backends.md."""

import pytest

from systems.photometric_fit import FitConfig, fit

OBJECTS = ("cube", "sphere", "torus", "cone", "cylinder")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["nerf", "gaussians"])
@pytest.mark.parametrize("obj", OBJECTS)
def test_photometric_fit_reaches_the_ground_truth(backend, obj):
    res = fit(FitConfig(backend=backend, object=obj))
    assert res.metrics["iou"] >= 0.85, res.metrics
    assert res.metrics["colour_mae"] <= 0.1, res.metrics
