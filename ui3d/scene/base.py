"""The Scene protocol, how a training loop steps a scene, and scene files.

A scene folder holds ``scene.json`` (``{"kind": ..., "config": {...}}``, the scene's typed config)
and ``scene.safetensors`` (its state dict), both written atomically, so ``ui3d export`` can rebuild
the scene without the run's config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

import torch
from torch import Tensor

from ui3d.cameras import Cameras
from ui3d.config import from_dict, to_dict
from ui3d.errors import UserError, clip
from ui3d.io import atomic_path, read_json, write_json
from ui3d.render.types import RenderOutput

__all__ = [
    "Scene", "SceneTraining", "SCENE_KINDS", "build_optimiser", "save_scene", "load_scene", "find_scene_dir",
    "build_scene",
]

SCENE_JSON = "scene.json"
SCENE_WEIGHTS = "scene.safetensors"


@dataclass(frozen=True)
class SceneTraining:
    """How a training loop steps a scene: its optimiser and its upkeep between steps. The values
    belong to the run's config (``TextTo3DConfig``, ``FitConfig``), so a scene's own config, the
    YAML presets and saved scenes stay as they are."""

    lr: float = 1e-2  # scenes trained at one rate (the NeRF); Gaussians use GaussianConfig.lr_*
    betas: tuple[float, float] = (0.9, 0.99)
    occupancy_every: int = 16  # NeRF: refresh the occupancy grid (empty space is not sampled)
    densify_every: int = 50  # Gaussians: densify and prune every N steps ...
    densify_until: int = 250  # ... before this step


@runtime_checkable
class Scene(Protocol):
    """What guidance, export and the training loop need from a 3D backend."""

    kind: str  # the name scene files store (SCENE_KINDS)
    has_splats: bool  # export: the scene itself is the .ply (3D Gaussian splats); else the mesh is

    @property
    def device(self) -> torch.device: ...

    def render(
        self, cameras: Cameras, shading: str = "albedo", generator: torch.Generator | None = None,
        background: Tensor | None = None, normals: bool = True,
    ) -> RenderOutput:
        """``normals=False``: the caller reads no ``normal`` (under albedo shading a backend may
        leave it zero: hulls, videos, the judge's renders and albedo training steps skip its cost)."""
        ...

    def density(self, x: Tensor) -> Tensor: ...

    def albedo(self, x: Tensor) -> Tensor: ...

    def surface_threshold(self, voxel_size: float) -> float: ...

    def carved_threshold(self, voxel_size: float) -> float:
        """The density threshold inside the visual hull of the scene's renders (ui3d.export.mesh)."""
        ...

    def param_groups(self, training: SceneTraining) -> list[dict]:
        """Optimiser parameter groups covering every parameter once."""
        ...

    def maintain(self, step: int, training: SceneTraining, generator: torch.Generator | None = None) -> bool:
        """Upkeep after the optimiser step of ``step``; True when the parameter set changed (the
        optimiser must be rebuilt)."""
        ...

    def keep_region(self, contains: Callable[[Tensor], Tensor]) -> float:
        """For a finished scene: stop rendering what lies outside a region (``contains(points [N, 3])
        -> [N] bool``), e.g. the floaters its mesh export dropped. Returns the fraction kept."""
        ...


def build_optimiser(scene: Scene, training: SceneTraining) -> torch.optim.Optimizer:
    """Adam over the scene's parameter groups (rebuild it whenever ``maintain`` returns True)."""
    return torch.optim.Adam(scene.param_groups(training), betas=training.betas, eps=1e-15)


def _kinds() -> dict[str, tuple[type, type]]:
    from ui3d.scene.gaussians import GaussianConfig, GaussianScene
    from ui3d.scene.nerf import HashGridNeRF, NeRFConfig

    return {"nerf": (HashGridNeRF, NeRFConfig), "gaussians": (GaussianScene, GaussianConfig)}


SCENE_KINDS = ("nerf", "gaussians")


def build_scene(kind: str, config: dict | None = None, generator: torch.Generator | None = None) -> torch.nn.Module:
    kinds = _kinds()
    if kind not in kinds:
        raise UserError(f"scene kind: expected one of {', '.join(kinds)}, got {clip(repr(kind))}")
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
    raise UserError(
        f"run folder: no saved scene ({SCENE_JSON} + {SCENE_WEIGHTS}) in {run_dir}, {run_dir / 'scene'} "
        "or its checkpoints"
    )


def load_scene(folder: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild a scene saved by :func:`save_scene` (weights via safetensors only)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = find_scene_dir(folder)
    try:
        meta = read_json(folder / SCENE_JSON)
    except (OSError, ValueError, RecursionError) as err:  # ValueError: not JSON, or not UTF-8
        raise UserError(f"scene file '{folder / SCENE_JSON}' cannot be read ({type(err).__name__})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("kind"), str):
        raise UserError(f"scene file '{folder / SCENE_JSON}' has no 'kind'")
    try:
        scene = build_scene(meta["kind"], meta.get("config", {}))
    except UserError as err:  # an unknown kind, or a config this version refuses
        raise UserError(f"scene file '{folder / SCENE_JSON}': {err}") from None
    try:
        state = load_file(str(folder / SCENE_WEIGHTS))
    except (SafetensorError, OSError) as err:
        raise UserError(f"scene file '{folder / SCENE_WEIGHTS}' is not a readable safetensors file ({type(err).__name__})") from None
    try:
        scene.load_state_dict(state)
    except (RuntimeError, KeyError) as err:
        raise UserError(f"scene file '{folder / SCENE_WEIGHTS}' does not fit its {SCENE_JSON}: "
                        f"{str(err).splitlines()[0][:200]}") from None
    return scene.to(device).eval()
