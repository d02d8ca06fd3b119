"""Differentiable 3D scenes: HashGridNeRF and GaussianScene, and their files."""

from ui3d.scene.base import (
    SCENE_KINDS,
    Scene,
    SceneTraining,
    build_optimiser,
    build_scene,
    find_scene_dir,
    load_scene,
    save_scene,
)
from ui3d.scene.gaussians import GaussianConfig, GaussianScene
from ui3d.scene.nerf import HashGridNeRF, NeRFConfig

__all__ = [
    "SCENE_KINDS",
    "GaussianConfig",
    "GaussianScene",
    "HashGridNeRF",
    "NeRFConfig",
    "Scene",
    "SceneTraining",
    "build_optimiser",
    "build_scene",
    "find_scene_dir",
    "load_scene",
    "save_scene",
]
