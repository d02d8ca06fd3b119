"""Export a scene to files: meshes, Gaussian splats, a turntable video.

Formats:
- ``obj``: ``mesh.obj`` + ``mesh.mtl`` + ``mesh.png`` (xatlas UVs, baked albedo; vertex colours too);
- ``glb``: ``mesh.glb`` with vertex colours; scenes that are splats also ``splats.glb``
  (``KHR_gaussian_splatting``);
- ``ply``: scenes that are splats (``has_splats``): ``gaussians.ply`` (standard 3DGS layout);
  others: ``mesh.ply`` (vertex colours);
- ``video``: ``turntable.mp4`` (``.gif`` without ffmpeg).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ui3d.export.mesh import ExtractConfig, Mesh, extract_mesh
from ui3d.export.texture import textured_mesh
from ui3d.export.video import turntable_frames, write_video
from ui3d.export.writers import write_gaussian_ply, write_glb, write_mesh_ply, write_obj, write_splat_glb
from ui3d.scene.base import Scene

__all__ = ["FORMATS", "ExportOptions", "export_scene"]

FORMATS = ("obj", "glb", "ply", "video")


@dataclass(frozen=True)
class ExportOptions:
    formats: tuple[str, ...] = FORMATS
    extract: ExtractConfig = ExtractConfig()
    texture_size: int = 512
    video_frames: int = 72  # 3 s at 24 fps
    video_size: int = 256
    video_render_size: int = 96  # frames render at this size and are upscaled: the render is most of the cost


def _colour_fn(scene: Scene):
    """The scene's albedo as a numpy function of points (the texture baker's input)."""

    def fn(points: np.ndarray) -> np.ndarray:
        pts = torch.from_numpy(points).float().to(scene.device)
        with torch.no_grad():
            return torch.cat([scene.albedo(pts[i : i + 65536]).cpu() for i in range(0, len(pts), 65536)]).numpy()

    return fn


def export_scene(scene: Scene, out_dir: str | Path, options: ExportOptions = ExportOptions(),
                 mesh: Mesh | None = None) -> dict[str, list[Path]]:
    """Write the requested formats into ``out_dir``; returns format -> paths written. A scene
    with nothing above the density threshold raises ValueError naming the threshold tried (and
    writes no mesh file). ``mesh``: an already extracted mesh of the scene, to skip extraction."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    ply_is_mesh = "ply" in options.formats and not scene.has_splats
    if (any(f in options.formats for f in ("obj", "glb")) or ply_is_mesh) and mesh is None:
        mesh = extract_mesh(scene, options.extract)
    if "obj" in options.formats:
        written["obj"] = write_obj(textured_mesh(mesh, _colour_fn(scene), options.texture_size), out_dir / "mesh.obj")
    if "glb" in options.formats:
        written["glb"] = [write_glb(mesh, out_dir / "mesh.glb")]
        if scene.has_splats:
            written["glb"].append(write_splat_glb(scene, out_dir / "splats.glb"))
    if "ply" in options.formats:
        if scene.has_splats:
            written["ply"] = [write_gaussian_ply(scene, out_dir / "gaussians.ply")]
        else:
            written["ply"] = [write_mesh_ply(mesh, out_dir / "mesh.ply")]
    if "video" in options.formats:
        frames = turntable_frames(scene, options.video_frames, options.video_size, render_size=options.video_render_size)
        written["video"] = [write_video(frames, out_dir / "turntable.mp4")]
    return written
