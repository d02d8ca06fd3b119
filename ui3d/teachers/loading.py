"""Pick a teacher from a command-line spec: builtin | a built-in teacher's .safetensors file |
exact-view | exact-camera (the world's oracles, :mod:`ui3d.teachers.oracle`) | sd | a hub id | a
local folder."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from ui3d.teachers.oracle import ORACLE_SPECS, check_world_prompts, load_oracle

TEACHER_SPECS = ("builtin", "FILE.safetensors", "exact-view", "exact-camera", "sd", "HUB_ID", "PATH")


def default_teacher_spec() -> str:
    """Stable Diffusion where CUDA is present, else the built-in teacher (the README says why)."""
    return "sd" if torch.cuda.is_available() else "builtin"


# CFG in text-to-3D. The built-in teacher's samples grow with CFG: silhouette area over the true render's
# at the same camera 1.05 at CFG 1.5, 1.26 at 4, 1.35 at 7.5 (red and blue cubes), and the scenes guided
# by it follow (cube 1.18 at 1.5, 1.47 at 7.5). Over the 11 benchmark prompts (one seed) CFG 2.5 gave the
# best mean IoU; 1.5 lost the gray house's walls: docs/benchmarks.md, "Teacher CFG in text-to-3D".
BUILTIN_GUIDANCE_SCALE = 2.5
GUIDANCE_SCALE = 7.5  # Stable Diffusion (ProlificDreamer's VSD); the oracles' rows were measured with it


def _is_builtin(spec: str) -> bool:
    return spec == "builtin" or spec.endswith(".safetensors")


def teacher_guidance_scale(spec: str) -> float:
    """The CFG that VSD and Uni-Instruct use with a teacher unless a config sets one."""
    return BUILTIN_GUIDANCE_SCALE if _is_builtin(spec) else GUIDANCE_SCALE


# Share of DreamFusion's textureless (white-albedo) steps after the albedo warm-up. A white-shaded render
# of a non-white object is brighter than every image of it the built-in teacher (or an oracle) knows, and
# the scene can darken it only by thinning its surface over the darker background: 60 textureless-only
# steps took a finished red cube's opacity inside its true silhouette from 0.97 to 0.00, the gray house's
# from 0.82 to 0.39 (lambertian-only: 0.98, 0.88). Stable Diffusion keeps DreamFusion's 0.5, as the anchors
# run it (not measured here: no weights offline). docs/benchmarks.md, "Textureless steps thin dark objects".
TEXTURELESS_PROB = 0.5


def teacher_textureless_prob(spec: str) -> float:
    """The share of textureless steps text-to-3D takes with a teacher unless a config sets one."""
    return 0.0 if _is_builtin(spec) or spec in ORACLE_SPECS else TEXTURELESS_PROB


def load_teacher(spec: str, device: str = "cpu", prompts: Sequence[str] = ()):
    """Load and check: prompts the teacher cannot read raise ValueError before any heavy work."""
    if _is_builtin(spec):  # the shipped built-in teacher, or another one's file
        from ui3d.teachers.builtin import BuiltinTeacher

        teacher = BuiltinTeacher.load() if spec == "builtin" else BuiltinTeacher.load(spec)
        teacher.check_prompts([p for p in prompts if p])
        return teacher
    if spec in ORACLE_SPECS:
        return load_oracle(spec, prompts)
    from ui3d.teachers.stable_diffusion import DEFAULT_MODEL, StableDiffusionTeacher

    model = DEFAULT_MODEL if spec == "sd" else spec
    local = Path(model).exists()
    return StableDiffusionTeacher.from_pretrained(model, device=device, local_files_only=local)


def check_prompts(spec: str, prompts: Sequence[str]) -> None:
    """Raise ValueError for prompts the teacher cannot read, without keeping it loaded: only the
    built-in teacher has a closed vocabulary (Stable Diffusion's tokenizer reads any text)."""
    if spec in ORACLE_SPECS:  # the built-in teacher's words, and objects the world can draw
        load_teacher("builtin", "cpu", prompts)
        check_world_prompts(prompts)
    elif _is_builtin(spec):
        load_teacher(spec, "cpu", prompts)
