"""Export: mesh extraction, UV + texture, obj/glb/ply writers, turntable video, the export command.

The names below load their module on first use: a run config that only needs ``ExtractConfig``
(``ui3d.export.mesh``) does not pay for the texture baker's scipy and the writers at start-up."""

from importlib import import_module

_HOMES = {
    "add_export_command": "cli", "parse_formats": "cli", "run_export": "cli",
    "EmptySceneError": "mesh", "ExtractConfig": "mesh", "Mesh": "mesh", "density_grid": "mesh", "extract_mesh": "mesh",
    "FORMATS": "scene", "ExportOptions": "scene", "export_scene": "scene",
    "TexturedMesh": "texture", "bake_texture": "texture", "sample_texture": "texture", "textured_mesh": "texture",
    "unwrap": "texture",
    "turntable_frames": "video", "write_video": "video",
    "read_gaussian_ply": "writers", "write_gaussian_ply": "writers", "write_glb": "writers", "write_mesh_ply": "writers",
    "write_obj": "writers",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'ui3d.export' has no attribute {name!r}")
    return getattr(import_module(f"ui3d.export.{_HOMES[name]}"), name)
