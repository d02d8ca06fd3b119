"""The built-in teacher v2's parts: muted backgrounds, camera conditioning, the warm start from v1."""

import dataclasses

import pytest
import torch

from ui3d.render.background import MUTED_MAX_SATURATION, MUTED_VALUE, muted_backgrounds
from ui3d.teachers.builtin import (
    ASSETS_DIR,
    CAMERA_FEATURES,
    BuiltinTeacherModel,
    camera_features,
    camera_inputs,
    camera_ray_map,
    load_teacher_model,
    no_camera,
)
from ui3d.world.dataset import WorldDataset, WorldDatasetConfig
from ui3d.world.palette import COLOURS

V1 = ASSETS_DIR / "builtin_teacher_v1.safetensors"  # the text-only teacher v2 started from
SINCOS = ASSETS_DIR / "builtin_teacher_v2_sincos.safetensors"  # v2 with the 7 camera features, the default before


def test_muted_backgrounds_leave_white_and_black_objects_a_silhouette():
    bg = muted_backgrounds(400, 8, 8, torch.Generator().manual_seed(0))
    assert bg.shape == (400, 8, 8, 3)
    value = bg.amax(-1)
    assert MUTED_VALUE[0] - 1e-6 <= float(value.min()) and float(value.max()) <= MUTED_VALUE[1] + 1e-6
    saturation = 1 - bg.amin(-1) / value
    assert float(saturation.max()) <= MUTED_MAX_SATURATION + 1e-6
    for name in ("white", "black"):
        colour = torch.tensor(COLOURS[name])
        assert float((bg - colour).abs().amax(-1).min()) > 0.12, name
    gradient = (bg[:, 0] - bg[:, -1]).abs().amax(dim=(-1, -2)) > 1e-6
    assert 0.4 < float(gradient.float().mean()) < 0.6  # half solid, half vertical gradients
    assert torch.equal(bg[:, :, 0], bg[:, :, -1])  # gradients run top to bottom only


def test_muted_dataset_changes_only_the_background():
    plain = WorldDataset(WorldDatasetConfig(resolution=16, ss=1), seed=5, batch_size=6).batch(0)
    muted = WorldDataset(WorldDatasetConfig(resolution=16, ss=1, background_kind="muted"), seed=5, batch_size=6).batch(0)
    assert plain.captions == muted.captions and torch.equal(plain.alpha, muted.alpha)
    inside, outside = (plain.alpha == 1).expand_as(plain.images), (plain.alpha == 0).expand_as(plain.images)
    assert torch.equal(plain.images[inside], muted.images[inside])
    assert torch.all(plain.images[outside] == 1.0)  # white
    assert float(muted.images[outside].max()) < 2 * MUTED_VALUE[1] - 1 + 1e-5  # never white


def test_camera_features_and_the_warm_start_from_a_text_only_teacher():
    text_only, _ = load_teacher_model(V1)
    assert text_only.config.camera_dim == 0
    cfg = dataclasses.replace(text_only.config, camera_dim=CAMERA_FEATURES)
    model = BuiltinTeacherModel(cfg, text_only.tokenizer)
    model.load_warm_start(text_only.state_dict())
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(4, 3, 32, 32, generator=g), torch.tensor([10, 200, 500, 900])
    hidden = text_only.encode_text(["a red cube"] * 4)
    cams = camera_features(torch.tensor([0.0, 90, 180, 270]), torch.tensor([10.0, 20, 30, 60]),
                           torch.tensor([1.5, 1.6, 1.9, 2.0]), torch.tensor([40.0, 50, 60, 70]))
    assert cams.shape == (4, CAMERA_FEATURES) and torch.all(cams[:, -1] == 1) and float(cams[:, :6].abs().max()) <= 1
    with torch.no_grad():
        reference = text_only(x, t, hidden)
        torch.testing.assert_close(model(x, t, hidden, cams), reference, rtol=0, atol=0)
        torch.testing.assert_close(model(x, t, hidden), reference, rtol=0, atol=0)  # None = zeros
        # a camera column that has learned something changes the prediction, and only with a camera given
        model.unet.class_embedding.linear_1.weight[:, -CAMERA_FEATURES:].normal_(generator=g)
        assert not torch.allclose(model(x, t, hidden, cams), reference, atol=1e-3)
        torch.testing.assert_close(model(x, t, hidden), reference, rtol=0, atol=0)


def test_azimuth_harmonics_start_from_the_seven_feature_teacher_and_read_the_turn():
    """camera_dim 15 appends sin/cos of 2, 3, 4 × azimuth and 2 × elevation: a quarter turn changes
    none of the 4× pair, no camera stays all zeros, and a 7-feature teacher warm-starts it exactly."""
    az = torch.tensor([10.0, 100.0, 55.0, 0.0])
    feats = camera_features(az, torch.tensor([20.0, 20.0, 20.0, 0.0]), torch.full((4,), 1.75), torch.full((4,), 55.0))
    wide = camera_inputs(feats, 15)
    assert wide.shape == (4, 15) and torch.equal(wide[:, :CAMERA_FEATURES], feats)
    rad = torch.deg2rad(az)
    torch.testing.assert_close(wide[:, 7:13:2], torch.stack([(k * rad).sin() for k in (2, 3, 4)], 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(wide[0, 11:13], wide[1, 11:13], atol=1e-5, rtol=0)  # 4 × azimuth: 10° and 100° alike
    assert not torch.allclose(wide[0, 7:9], wide[1, 7:9], atol=0.1)  # 2 × azimuth: they differ
    assert torch.equal(camera_inputs(no_camera(2), 15), torch.zeros(2, 15))

    seven, _ = load_teacher_model(SINCOS)
    assert seven.config.camera_dim == CAMERA_FEATURES
    model = BuiltinTeacherModel(dataclasses.replace(seven.config, camera_dim=15), seven.tokenizer)
    model.load_warm_start(seven.state_dict())
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(4, 3, 32, 32, generator=g), torch.tensor([10, 200, 500, 900])
    hidden = seven.encode_text(["a red cube"] * 4)
    with torch.no_grad():
        torch.testing.assert_close(model(x, t, hidden, feats), seven(x, t, hidden, feats), rtol=0, atol=0)
        model.unet.class_embedding.linear_1.weight[:, -8:].normal_(generator=g)
        assert not torch.allclose(model(x, t, hidden, feats), seven(x, t, hidden, feats), atol=1e-3)
        torch.testing.assert_close(model(x, t, hidden), seven(x, t, hidden), rtol=0, atol=0)  # no camera: unchanged


def test_the_ray_map_is_the_cameras_own_rays_and_warm_starts_exactly():
    """camera_ray_map rebuilds the camera from its 7 features: its directions are camera_rays' and
    its moments o × d; no camera gives zeros; a 7-feature teacher warm-starts the ray model exactly
    (zero input channels), and a trained ray channel makes 0° and 45° differ."""
    from ui3d.cameras import camera_rays, cameras_from_spherical

    cams = cameras_from_spherical(torch.tensor([0.0, 45.0, 200.0]), torch.tensor([15.0, -5.0, 60.0]),
                                  torch.tensor([1.5, 1.75, 2.0]), torch.tensor([40.0, 55.0, 70.0]), 8)
    feats = camera_features(cams.azimuth_deg, cams.elevation_deg, cams.distance, cams.fovy_deg)
    rays = camera_ray_map(feats, 8)
    origins, dirs = camera_rays(cams)
    assert rays.shape == (3, 6, 8, 8)
    torch.testing.assert_close(rays[:, :3], dirs.permute(0, 3, 1, 2), atol=1e-5, rtol=0)
    torch.testing.assert_close(rays[:, 3:], torch.cross(origins, dirs, dim=-1).permute(0, 3, 1, 2), atol=1e-5, rtol=0)
    assert torch.equal(camera_ray_map(no_camera(2), 8), torch.zeros(2, 6, 8, 8))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as BuiltinTeacher runs it: the geometry stays fp32
        torch.testing.assert_close(camera_ray_map(feats, 8), rays, rtol=0, atol=0)

    seven, _ = load_teacher_model(SINCOS)
    model = BuiltinTeacherModel(dataclasses.replace(seven.config, camera_rays=True), seven.tokenizer)
    model.load_warm_start(seven.state_dict())
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(2, 3, 32, 32, generator=g), torch.tensor([500])
    hidden = seven.encode_text(["a red cube"] * 2)
    turns = camera_features(torch.tensor([0.0, 45.0]), torch.full((2,), 15.0), torch.full((2,), 1.75), torch.full((2,), 55.0))
    with torch.no_grad():
        torch.testing.assert_close(model(x, t, hidden, turns), seven(x, t, hidden, turns), rtol=0, atol=0)
        model.unet.conv_in.weight[:, 3:].normal_(generator=g)
        same_x = torch.cat([x[:1], x[:1]])
        eps = model(same_x, t, hidden, turns)
        assert (eps[0] - eps[1]).abs().mean() > 1e-2
        torch.testing.assert_close(model(x, t, hidden), seven(x, t, hidden), rtol=0, atol=0)  # no camera: unchanged
    with pytest.raises(ValueError, match="camera_rays"):
        dataclasses.replace(seven.config, camera_dim=0, camera_rays=True)


def test_camera_dim_is_checked():
    with pytest.raises(ValueError, match="camera_dim"):
        dataclasses.replace(load_teacher_model()[0].config, camera_dim=3)


def test_v2_training_starts_from_v1_and_resumes(tmp_path):
    from pathlib import Path

    from ui3d.config import load_config
    from ui3d.teachers.builtin_train import TeacherTrainConfig, train_teacher

    preset = Path(__file__).resolve().parents[2] / "configs" / "teacher" / "builtin_v2.yaml"
    cfg = load_config(TeacherTrainConfig, preset, ["data.n_images=32", "data.render_batch=32", "batch_size=4",
                                                   "steps=2", f"init_from={V1}", "lr=0"])
    path = train_teacher(cfg, tmp_path / "run", progress=False)
    model, info = load_teacher_model(path)
    assert model.config.camera_dim == CAMERA_FEATURES and info["steps"] == 2
    v1, _ = load_teacher_model(V1)
    # lr 0: the weights are v1's (the camera columns zero), so the warm start loaded them all
    state = model.state_dict()
    for key, value in v1.state_dict().items():
        own = state[key][:, : value.shape[1]] if key.endswith("class_embedding.linear_1.weight") else state[key]
        torch.testing.assert_close(own, value, msg=key)
    longer = dataclasses.replace(cfg, steps=3)
    train_teacher(longer, tmp_path / "run", resume=True, progress=False)
    assert load_teacher_model(tmp_path / "run" / "teacher.safetensors")[1]["steps"] == 3


def test_cfg_inflated_the_v2_teachers_objects_so_text_to_3d_guides_low():
    """Silhouette area of samples over the true render at the same camera (16 samples of red and blue
    cubes): with v2 + harmonics, CFG 7.5 draws them ~15 % larger than CFG 1.5 (docs/benchmarks.md,
    "Teacher CFG in text-to-3D"), and the scenes guided by it followed: text-to-3D guides the
    built-in teachers at 2.5. v3 (shipped) draws its cubes near their true size at 1.5 (measured 1.09,
    and 1.06 at 7.5: it no longer inflates them; 2.5 was not re-tuned for it)."""
    from ui3d.metrics.view_fidelity import view_fidelity
    from ui3d.teachers.builtin import BuiltinTeacher
    from ui3d.teachers.loading import teacher_guidance_scale

    def areas(path, cfgs: tuple[float, ...]) -> dict:
        teacher = BuiltinTeacher.load(path)
        return {cfg: view_fidelity(teacher, ["cube"], ["red", "blue"], per_caption=8, steps=20, cfg=cfg, seed=0,
                                   text_only=False)["area_ratio_with_camera"] for cfg in cfgs}

    area = areas(ASSETS_DIR / "builtin_teacher_v2_harmonics.safetensors", (1.5, 7.5))
    assert area[7.5] > area[1.5] + 0.07, area  # measured 1.07 and 1.22 (seeds 1, 2: 1.08/1.19, 1.09/1.30)
    assert area[1.5] < 1.15, area
    assert areas(ASSETS_DIR / "builtin_teacher.safetensors", (1.5,))[1.5] < 1.15
    assert teacher_guidance_scale("builtin") == 2.5


def test_the_default_teacher_is_v4_continued_from_v3():
    """assets/builtin_teacher.safetensors is v4: the v4 preset's run (batch 256, stopped by its time
    limit at step 3958) from v3, kept beside it with its own preset's 12 000 steps from v2 +
    harmonics; the 15 camera inputs, and its prediction moves when the cube turns by 45° (the
    4 × azimuth columns are in use)."""
    from ui3d.config import load_config
    from ui3d.teachers.builtin_train import TeacherTrainConfig
    from ui3d.teachers.cli import CONFIG_DIR

    v4 = load_config(TeacherTrainConfig, CONFIG_DIR / "builtin_v4.yaml")
    model, info = load_teacher_model()
    assert model.config.camera_dim == v4.model.camera_dim == 15
    assert info["steps"] == 3958 < v4.steps and info["batch_size"] == v4.batch_size == 256
    assert info["data_seed"] == v4.data.seed == 4
    v3_path = ASSETS_DIR.parent / v4.init_from
    assert v3_path.resolve() == (ASSETS_DIR / "builtin_teacher_v3.safetensors")
    v3 = load_config(TeacherTrainConfig, CONFIG_DIR / "builtin_v3.yaml")
    assert load_teacher_model(v3_path)[1]["steps"] == v3.steps == 12000
    assert (ASSETS_DIR.parent / v3.init_from).resolve() == (ASSETS_DIR / "builtin_teacher_v2_harmonics.safetensors")
    assert model.unet.class_embedding.linear_1.weight[:, -8:].abs().max() > 0
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(1, 3, 32, 32, generator=g).expand(2, -1, -1, -1), torch.tensor([500])
    turns = camera_features(torch.tensor([0.0, 45.0]), torch.full((2,), 15.0), torch.full((2,), 1.75), torch.full((2,), 55.0))
    with torch.no_grad():
        eps = model(x, t, model.encode_text(["a red cube"] * 2), turns)
    assert torch.isfinite(eps).all() and (eps[0] - eps[1]).abs().mean() > 1e-4
