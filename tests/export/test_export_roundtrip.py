import argparse

import numpy as np
import pytest
import torch
import trimesh
from torch import nn

from ui3d.export import (
    EmptySceneError,
    ExportOptions,
    ExtractConfig,
    add_export_command,
    export_scene,
    extract_mesh,
    parse_formats,
    sample_texture,
    textured_mesh,
)
from ui3d.metrics.geometry import mesh_iou
from ui3d.world import make_object, occupancy_grid


class Balls(nn.Module):
    """Analytic density: solid balls (density 50 inside); red above z = 0, blue below. It does not
    render, so its meshes are not carved."""

    has_splats = False
    device = torch.device("cpu")

    def __init__(self, centres, radii, shell: float = 0.0):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.centres = torch.tensor(centres, dtype=torch.float32)
        self.radii = torch.tensor(radii, dtype=torch.float32)
        self.shell = shell

    def density(self, x):
        d = (x[:, None, :] - self.centres[None]).norm(dim=-1) - self.radii[None]  # [N, K]
        inside = (d < 0) & ((d > -self.shell) if self.shell > 0 else torch.ones_like(d, dtype=torch.bool))
        return inside.any(-1).float() * 50.0

    def albedo(self, x):
        red = torch.tensor([0.9, 0.1, 0.1])
        blue = torch.tensor([0.1, 0.2, 0.9])
        return torch.where(x[:, 2:3] > 0, red, blue)

    def surface_threshold(self, voxel_size):
        return 10.0


def test_sphere_mesh_is_accurate_and_coloured():
    mesh = extract_mesh(Balls([[0, 0, 0]], [0.4]), ExtractConfig(resolution=64))
    assert mesh.threshold == 10.0
    assert mesh_iou(mesh.vertices, mesh.faces, occupancy_grid(make_object("sphere"), 64)) > 0.9
    top = mesh.vertices[:, 2] > 0.1
    np.testing.assert_allclose(mesh.colours[top], np.tile([0.9, 0.1, 0.1], (top.sum(), 1)), atol=1e-6)
    assert trimesh.Trimesh(mesh.vertices, mesh.faces).is_watertight
    assert trimesh.Trimesh(mesh.vertices, mesh.faces).volume > 0  # outward faces


def test_empty_scene_names_the_threshold(tmp_path):
    with pytest.raises(EmptySceneError, match=r"threshold 10 .*largest density .* is 0"):
        export_scene(Balls([[5, 5, 5]], [0.1]), tmp_path, ExportOptions(formats=("obj", "glb"), extract=ExtractConfig(resolution=16)))
    assert not list(tmp_path.glob("mesh.*"))  # no empty file left behind
    with pytest.raises(ValueError, match="threshold"):
        ExtractConfig(threshold=-1.0)


def test_small_components_removed_and_cavities_filled():
    two = extract_mesh(Balls([[0, 0, 0], [0.7, 0.7, 0.7]], [0.4, 0.06]), ExtractConfig(resolution=48))
    assert len(trimesh.Trimesh(two.vertices, two.faces).split(only_watertight=False)) == 1
    shell = Balls([[0, 0, 0]], [0.4], shell=0.1)
    filled = extract_mesh(shell, ExtractConfig(resolution=48))
    assert trimesh.Trimesh(filled.vertices, filled.faces).volume == pytest.approx(4 / 3 * np.pi * 0.4**3, rel=0.1)
    hollow = extract_mesh(shell, ExtractConfig(resolution=48, fill_cavities=False))
    assert len(hollow.faces) > 1.5 * len(filled.faces)  # inner and outer surfaces


def test_decimation_caps_faces():
    mesh = extract_mesh(Balls([[0, 0, 0]], [0.4]), ExtractConfig(resolution=64, max_faces=2000))
    assert len(mesh.faces) <= 2000


def test_obj_and_glb_round_trip(tmp_path):
    scene = Balls([[0, 0, 0]], [0.4])
    opts = ExportOptions(formats=("obj", "glb", "ply"), extract=ExtractConfig(resolution=32), texture_size=128)
    written = export_scene(scene, tmp_path, opts)
    mesh = extract_mesh(scene, opts.extract)
    glb = trimesh.load(written["glb"][0], force="mesh", process=False)
    assert len(glb.vertices) == len(mesh.vertices)
    np.testing.assert_allclose(glb.visual.vertex_colors[:, :3] / 255.0, mesh.colours, atol=1 / 255 + 1e-6)
    obj = trimesh.load(written["obj"][0], force="mesh", process=False)
    tm = textured_mesh(mesh, lambda p: scene.albedo(torch.from_numpy(p)).numpy(), 128)
    assert len(obj.vertices) == len(tm.vertices)
    # the texture, looked up at each vertex's UV, gives the vertex's colour
    tex = np.asarray(obj.visual.material.image.convert("RGB"))
    looked_up = sample_texture(tex, np.asarray(obj.visual.uv))
    agree = (np.abs(looked_up - tm.colours).max(1) < 0.05).mean()
    assert agree > 0.9
    assert tex.reshape(-1, 3).std(0).max() > 0.1  # red and blue: not blank
    ply = trimesh.load(written["ply"][0], process=False)
    assert len(ply.vertices) == len(mesh.vertices)


def test_formats_and_cli(tmp_path):
    assert parse_formats("obj, glb,obj") == ("obj", "glb")
    with pytest.raises(ValueError, match="fbx.*obj, glb, ply, video"):
        parse_formats("obj,fbx")
    parser = argparse.ArgumentParser()
    add_export_command(parser.add_subparsers())
    args = parser.parse_args(["export", str(tmp_path), "--format", "obj"])
    with pytest.raises(ValueError, match="no saved scene"):
        args.handler(args)
    args = parser.parse_args(["export", str(tmp_path), "--format", "stl"])
    with pytest.raises(ValueError, match="stl"):
        args.handler(args)


def test_export_command_end_to_end(tmp_path):
    from ui3d.encoding import HashGridConfig
    from ui3d.scene import HashGridNeRF, NeRFConfig, save_scene

    scene = HashGridNeRF(NeRFConfig(grid=HashGridConfig(levels=2, log2_table_size=10, max_resolution=32), samples_per_ray=16, blob_density=40.0))
    save_scene(scene, tmp_path / "run" / "scene")
    parser = argparse.ArgumentParser()
    add_export_command(parser.add_subparsers())
    args = parser.parse_args(["export", str(tmp_path / "run"), "--format", "obj,glb,ply,video", "--resolution", "24",
                              "--texture-size", "64", "--video-frames", "4", "--video-size", "16"])
    assert args.handler(args) == 0
    out = tmp_path / "run" / "export"
    names = sorted(p.name for p in out.iterdir())
    assert names == ["mesh.glb", "mesh.mtl", "mesh.obj", "mesh.ply", "mesh.png", "turntable.mp4"], names
    assert not [p for p in out.iterdir() if "tmp" in p.name]
    import imageio.v3 as iio

    frames = iio.imread(out / "turntable.mp4")
    assert frames.shape[0] == 4 and frames.shape[1:3] == (16, 16)


def test_video_falls_back_to_gif(tmp_path, monkeypatch):
    import imageio.v2 as imageio
    import imageio.v3 as iio

    from ui3d.export import write_video

    frames = (np.random.default_rng(0).random((3, 16, 16, 3)) * 255).astype(np.uint8)
    real = imageio.mimwrite

    def no_ffmpeg(path, *args, **kwargs):
        if str(path).endswith(".mp4"):
            raise RuntimeError("no ffmpeg")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(imageio, "mimwrite", no_ffmpeg)
    out = write_video(frames, tmp_path / "turntable.mp4")
    assert out.suffix == ".gif" and not (tmp_path / "turntable.mp4").exists()
    assert iio.imread(out).shape[0] == 3
    assert not [p for p in tmp_path.iterdir() if "tmp" in p.name]
