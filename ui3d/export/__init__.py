"""Export: mesh extraction, UV + texture, obj/glb/ply writers, turntable video, the export command."""

from ui3d.export.cli import add_export_command, parse_formats, run_export
from ui3d.export.mesh import EmptySceneError, ExtractConfig, Mesh, density_grid, extract_mesh
from ui3d.export.scene import FORMATS, ExportOptions, export_scene
from ui3d.export.texture import TexturedMesh, bake_texture, sample_texture, textured_mesh, unwrap
from ui3d.export.video import turntable_frames, write_video
from ui3d.export.writers import read_gaussian_ply, write_gaussian_ply, write_glb, write_mesh_ply, write_obj

__all__ = [
    "FORMATS",
    "EmptySceneError",
    "ExportOptions",
    "ExtractConfig",
    "Mesh",
    "TexturedMesh",
    "add_export_command",
    "bake_texture",
    "density_grid",
    "export_scene",
    "extract_mesh",
    "parse_formats",
    "read_gaussian_ply",
    "run_export",
    "sample_texture",
    "textured_mesh",
    "turntable_frames",
    "unwrap",
    "write_gaussian_ply",
    "write_glb",
    "write_mesh_ply",
    "write_obj",
    "write_video",
]
