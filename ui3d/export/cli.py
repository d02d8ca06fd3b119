"""Export a saved scene: ``ui3d export RUN_DIR --format obj,glb,ply,video``.

The command line only: the formats and :func:`~ui3d.export.scene.export_scene` are in
:mod:`ui3d.export.scene`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ui3d.errors import UserError, user_input
from ui3d.export.mesh import ExtractConfig
from ui3d.export.scene import FORMATS, ExportOptions, export_scene

__all__ = ["parse_formats", "add_export_command", "run_export"]


def parse_formats(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise UserError(
            f"--format: unknown format(s) {', '.join(unknown) or repr(text)}; expected a comma-separated "
            f"list of: {', '.join(FORMATS)}"
        )
    return names


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


# upper bounds: a texture is size² texels, a video frames × size² pixels, all held in memory
FLAG_RANGES = {"texture_size": (16, 8192), "video_frames": (1, 2400), "video_size": (8, 2048)}


def run_export(args: argparse.Namespace) -> int:
    """Every flag, RUN_DIR and --out are checked before the scene loads; a failed export leaves no
    folder it made behind."""
    from ui3d.io import check_output_folder, remove_stale_temp_files, removed_on_failure
    from ui3d.scene.base import find_scene_dir, load_scene

    formats = parse_formats(args.format)
    for name, (low, high) in FLAG_RANGES.items():
        value = getattr(args, name)
        if not low <= value <= high:
            raise UserError(f"--{name.replace('_', '-')}: expected a value from {low} to {high}, got {value}")
    with user_input():  # the mesh flags' values, checked by ExtractConfig (its messages name each field)
        extract = ExtractConfig(resolution=args.resolution, threshold=args.threshold, max_faces=args.max_faces,
                                carve_views=args.carve_views)
    options = ExportOptions(formats=formats, extract=extract, texture_size=args.texture_size,
                            video_frames=args.video_frames, video_size=args.video_size)
    scene_dir = find_scene_dir(args.run_dir)  # first: a RUN_DIR without a scene is the mistake to name
    out = check_output_folder(Path(args.out) if args.out else Path(args.run_dir) / "export", "--out")
    remove_stale_temp_files(out)
    scene = load_scene(scene_dir, args.device)
    with removed_on_failure(out):
        written = export_scene(scene, out, options)
    for fmt, paths in written.items():
        print(f"{fmt}: {', '.join(str(p) for p in paths)}")
    return 0
