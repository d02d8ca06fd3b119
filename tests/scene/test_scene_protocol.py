"""The Scene protocol: what the training loops and the exporter use instead of asking which backend
a scene is."""

import pytest
import torch

from ui3d.cameras import orbit_cameras
from ui3d.encoding import HashGridConfig
from ui3d.scene import GaussianConfig, GaussianScene, HashGridNeRF, NeRFConfig, Scene, SceneTraining, build_optimiser

SMALL_NERF = NeRFConfig(grid=HashGridConfig(levels=2, log2_table_size=10, max_resolution=32), samples_per_ray=8,
                        occupancy_resolution=8)


def _nerf():
    return HashGridNeRF(SMALL_NERF, generator=torch.Generator().manual_seed(0))


def _gaussians(n=100):
    return GaussianScene(GaussianConfig(num_init=n), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("make, splats", [(_nerf, False), (_gaussians, True)])
def test_both_backends_are_scenes_and_say_what_they_export(make, splats):
    scene = make()
    assert isinstance(scene, Scene)
    assert scene.has_splats is splats
    assert scene.device == torch.device("cpu")


@pytest.mark.parametrize("make", [_nerf, _gaussians])
def test_param_groups_cover_every_parameter_once(make):
    scene = make()
    grouped = [p for g in scene.param_groups(SceneTraining()) for p in g["params"]]
    assert len(grouped) == len({id(p) for p in grouped})
    assert {id(p) for p in grouped} == {id(p) for p in scene.parameters()}


def test_learning_rates_nerf_at_the_runs_rate_gaussians_at_their_own():
    training = SceneTraining(lr=0.25, betas=(0.5, 0.75))
    nerf_opt = build_optimiser(_nerf(), training)
    assert [g["lr"] for g in nerf_opt.param_groups] == [0.25]
    assert nerf_opt.param_groups[0]["betas"] == (0.5, 0.75)
    cfg = GaussianConfig(num_init=10, lr_means=0.125, lr_colour=0.5)
    rates = [g["lr"] for g in GaussianScene(cfg).param_groups(training)]
    assert rates[0] == 0.125 and rates[4] == 0.5 and 0.25 not in rates


def test_nerf_maintenance_refreshes_the_occupancy_grid_on_schedule_and_keeps_its_parameters():
    scene = _nerf()
    training = SceneTraining(occupancy_every=3)
    changed = [scene.maintain(step, training, torch.Generator().manual_seed(step)) for step in range(7)]
    assert changed == [False] * 7
    assert int(scene.occupancy.updates) == 3  # steps 0, 3 and 6
    assert not bool(scene.occupancy.occupied.all())  # the grid was refreshed: empty corners are skipped


def test_gaussian_maintenance_densifies_on_schedule_and_asks_for_a_new_optimiser():
    scene = _gaussians().train()
    training = SceneTraining(densify_every=2, densify_until=4)
    changed, counts = [], []
    for step in range(5):
        scene.render(orbit_cameras(2, 16), background=torch.ones(3)).rgb.sum().backward()
        changed.append(scene.maintain(step, training, torch.Generator().manual_seed(step)))
        counts.append(scene.num)
    assert changed == [False, True, False, False, False]  # after step 1 only (step 3 + 1 is not < 4)
    assert counts[0] == 100 and counts[1] > 100 and counts[4] == counts[1]
