"""The Scene protocol and scene files.

A scene folder holds ``scene.json`` (``{"kind": ..., "config": {...}}``, the scene's typed config)
and ``scene.safetensors`` (its state dict), both written atomically, so ``ui3d export`` can rebuild
the scene without the run's config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from ui3d.cameras import Cameras
from ui3d.config import from_dict, to_dict
from ui3d.io import atomic_path, read_json, write_json
from ui3d.render.types import RenderOutput

__all__ = ["Scene", "SCENE_KINDS", "save_scene", "load_scene", "find_scene_dir", "build_scene"]

SCENE_JSON = "scene.json"
SCENE_WEIGHTS = "scene.safetensors"


@runtime_checkable
class Scene(Protocol):
    """What guidance, export and the training loop need from a 3D backend."""

    kind: str

    def render(
        self, cameras: Cameras, shading: str = "albedo", generator: torch.Generator | None = None,
        background: Tensor | None = None,
    ) -> RenderOutput: ...

    def density(self, x: Tensor) -> Tensor: ...

    def albedo(self, x: Tensor) -> Tensor: ...

    def surface_threshold(self, voxel_size: float) -> float: ...


def _kinds() -> dict[str, tuple[type, type]]:
    from ui3d.scene.gaussians import GaussianConfig, GaussianScene
    from ui3d.scene.nerf import HashGridNeRF, NeRFConfig

    return {"nerf": (HashGridNeRF, NeRFConfig), "gaussians": (GaussianScene, GaussianConfig)}


SCENE_KINDS = ("nerf", "gaussians")


def build_scene(kind: str, config: dict | None = None, generator: torch.Generator | None = None) -> torch.nn.Module:
    kinds = _kinds()
    if kind not in kinds:
        raise ValueError(f"scene kind: expected one of {', '.join(kinds)}, got {kind!r}")
    cls, cfg_cls = kinds[kind]
    return cls(from_dict(cfg_cls, config or {}), generator=generator)


def save_scene(scene: torch.nn.Module, folder: str | Path) -> Path:
    """Write ``scene.json`` + ``scene.safetensors`` into ``folder`` (atomically); returns it."""
    from safetensors.torch import save_file

    folder = Path(folder)
    state = {k: v.detach().cpu().contiguous() for k, v in scene.state_dict().items()}
    with atomic_path(folder / SCENE_WEIGHTS) as tmp:
        save_file(state, str(tmp))
    write_json(folder / SCENE_JSON, {"kind": scene.kind, "config": to_dict(scene.cfg)})
    return folder


def find_scene_dir(run_dir: str | Path) -> Path:
    """The scene folder of a run: ``run_dir`` itself, ``run_dir/scene`` or the newest
    ``run_dir/checkpoints/*/scene``."""
    run_dir = Path(run_dir)
    candidates = [run_dir, run_dir / "scene"]
    ckpts = sorted((run_dir / "checkpoints").glob("*/scene"), key=lambda p: p.stat().st_mtime) if (run_dir / "checkpoints").is_dir() else []
    candidates += ckpts[::-1]
    for c in candidates:
        if (c / SCENE_JSON).is_file() and (c / SCENE_WEIGHTS).is_file():
            return c
    raise ValueError(
        f"run folder: no saved scene ({SCENE_JSON} + {SCENE_WEIGHTS}) in {run_dir}, {run_dir / 'scene'} "
        "or its checkpoints"
    )


def load_scene(folder: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild a scene saved by :func:`save_scene` (weights via safetensors only)."""
    from safetensors.torch import load_file

    folder = find_scene_dir(folder)
    meta = read_json(folder / SCENE_JSON)
    if not isinstance(meta, dict) or "kind" not in meta:
        raise ValueError(f"scene file: {folder / SCENE_JSON} has no 'kind'")
    scene = build_scene(meta["kind"], meta.get("config", {}))
    scene.load_state_dict(load_file(str(folder / SCENE_WEIGHTS)))
    return scene.to(device).eval()
