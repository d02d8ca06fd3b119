"""Scene folders a user names (`ui3d export RUN`): whatever is wrong with them is a one-line UserError
naming the folder or the file."""

import json

import pytest

from ui3d.errors import UserError
from ui3d.scene import GaussianConfig, GaussianScene, save_scene
from ui3d.scene.base import build_scene, load_scene


def test_a_folder_without_a_scene(tmp_path):
    with pytest.raises(UserError, match="run folder: no saved scene"):
        load_scene(tmp_path)


@pytest.mark.parametrize(
    "meta,expected",
    [
        ({"kind": "voxels", "config": {}}, "scene.json': scene kind: expected one of nerf, gaussians, got 'voxels'"),
        ({"kind": ["nerf"], "config": {}}, "scene.json' has no 'kind'"),  # unhashable: not a TypeError
        ({"kind": "gaussians", "config": {"num_init": 10**9}}, "scene.json': config key 'num_init'"),
    ],
)
def test_a_scene_json_this_version_cannot_build_names_the_file(tmp_path, meta, expected):
    folder = save_scene(GaussianScene(GaussianConfig(num_init=4)), tmp_path / "scene")
    (folder / "scene.json").write_text(json.dumps(meta))
    with pytest.raises(UserError) as err:
        load_scene(folder)
    assert expected in str(err.value) and str(folder / "scene.json") in str(err.value)


def test_an_unknown_kind_is_cut_when_echoed():
    with pytest.raises(UserError) as err:
        build_scene("k" * 10_000)
    assert "(10002 characters)" in str(err.value) and len(str(err.value)) < 400
