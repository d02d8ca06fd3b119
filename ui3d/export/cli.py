"""Export a saved scene: ``ui3d export RUN_DIR --format obj,glb,ply,video``.

Formats:
- ``obj``: ``mesh.obj`` + ``mesh.mtl`` + ``mesh.png`` (xatlas UVs, baked albedo; vertex colours too);
- ``glb``: ``mesh.glb`` with vertex colours;
- ``ply``: Gaussians: ``gaussians.ply`` (standard 3DGS layout); NeRF: ``mesh.ply`` (vertex colours);
- ``video``: ``turntable.mp4`` (``.gif`` without ffmpeg).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ui3d.export.mesh import ExtractConfig, Mesh, extract_mesh
from ui3d.export.texture import textured_mesh
from ui3d.export.video import turntable_frames, write_video
from ui3d.export.writers import write_gaussian_ply, write_glb, write_mesh_ply, write_obj

__all__ = ["FORMATS", "ExportOptions", "parse_formats", "export_scene", "add_export_command", "run_export"]

FORMATS = ("obj", "glb", "ply", "video")


def parse_formats(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise ValueError(
            f"--format: unknown format(s) {', '.join(unknown) or repr(text)}; expected a comma-separated "
            f"list of: {', '.join(FORMATS)}"
        )
    return names


@dataclass(frozen=True)
class ExportOptions:
    formats: tuple[str, ...] = FORMATS
    extract: ExtractConfig = ExtractConfig()
    texture_size: int = 512
    video_frames: int = 24
    video_size: int = 96  # 24 x 96² renders: the video was most of the export time on a CPU


def _colour_fn(scene):
    dev = next(iter(scene.parameters())).device

    def fn(points: np.ndarray) -> np.ndarray:
        pts = torch.from_numpy(points).float().to(dev)
        with torch.no_grad():
            return torch.cat([scene.albedo(pts[i : i + 65536]).cpu() for i in range(0, len(pts), 65536)]).numpy()

    return fn


def export_scene(scene, out_dir: str | Path, options: ExportOptions = ExportOptions(),
                 mesh: Mesh | None = None) -> dict[str, list[Path]]:
    """Write the requested formats into ``out_dir``; returns format -> paths written. A scene
    with nothing above the density threshold raises ValueError naming the threshold tried (and
    writes no mesh file). ``mesh``: an already extracted mesh of the scene, to skip extraction."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    needs_mesh = any(f in options.formats for f in ("obj", "glb")) or ("ply" in options.formats and scene.kind != "gaussians")
    if needs_mesh and mesh is None:
        mesh = extract_mesh(scene, options.extract)
    if "obj" in options.formats:
        written["obj"] = write_obj(textured_mesh(mesh, _colour_fn(scene), options.texture_size), out_dir / "mesh.obj")
    if "glb" in options.formats:
        written["glb"] = [write_glb(mesh, out_dir / "mesh.glb")]
    if "ply" in options.formats:
        if scene.kind == "gaussians":
            written["ply"] = [write_gaussian_ply(scene, out_dir / "gaussians.ply")]
        else:
            written["ply"] = [write_mesh_ply(mesh, out_dir / "mesh.ply")]
    if "video" in options.formats:
        frames = turntable_frames(scene, options.video_frames, options.video_size)
        written["video"] = [write_video(frames, out_dir / "turntable.mp4")]
    return written


def add_export_command(subparsers) -> argparse.ArgumentParser:
    """Register ``export`` on an argparse subparsers object; the handler is ``args.handler``."""
    p = subparsers.add_parser("export", help="re-export a saved scene (mesh, Gaussians, video)",
                              description=__doc__.splitlines()[0])
    p.add_argument("run_dir", help="run folder (or a folder with scene.json + scene.safetensors)")
    p.add_argument("--format", default=",".join(FORMATS), help=f"comma-separated: {', '.join(FORMATS)}")
    p.add_argument("--out", default=None, help="output folder (default: RUN_DIR/export)")
    p.add_argument("--resolution", type=int, default=ExtractConfig.resolution, help="density grid cells per side")
    p.add_argument("--threshold", type=float, default=None, help="density threshold (default: automatic)")
    p.add_argument("--max-faces", type=int, default=ExtractConfig.max_faces, help="decimate above this many faces")
    p.add_argument("--carve-views", type=int, default=ExtractConfig.carve_views,
                   help="renders whose silhouettes carve the mesh (0: the density alone)")
    p.add_argument("--texture-size", type=int, default=ExportOptions.texture_size)
    p.add_argument("--video-frames", type=int, default=ExportOptions.video_frames)
    p.add_argument("--video-size", type=int, default=ExportOptions.video_size)
    p.add_argument("--device", default="cpu")
    p.set_defaults(handler=run_export)
    return p


def run_export(args: argparse.Namespace) -> int:
    from ui3d.scene.base import load_scene

    formats = parse_formats(args.format)
    for name, low in (("texture_size", 16), ("video_frames", 1), ("video_size", 8), ("resolution", 8)):
        if getattr(args, name) < low:
            raise ValueError(f"--{name.replace('_', '-')}: expected >= {low}, got {getattr(args, name)}")
    scene = load_scene(args.run_dir, args.device)
    out = Path(args.out) if args.out else Path(args.run_dir) / "export"
    options = ExportOptions(
        formats=formats,
        extract=ExtractConfig(resolution=args.resolution, threshold=args.threshold, max_faces=args.max_faces,
                              carve_views=args.carve_views),
        texture_size=args.texture_size,
        video_frames=args.video_frames,
        video_size=args.video_size,
    )
    written = export_scene(scene, out, options)
    for fmt, paths in written.items():
        print(f"{fmt}: {', '.join(str(p) for p in paths)}")
    return 0
