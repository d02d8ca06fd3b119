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


def load_teacher(spec: str, device: str = "cpu", prompts: Sequence[str] = ()):
    """Load and check: prompts the teacher cannot read raise ValueError before any heavy work."""
    if spec == "builtin" or spec.endswith(".safetensors"):  # the shipped built-in teacher, or another one's file
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
    elif spec == "builtin" or spec.endswith(".safetensors"):
        load_teacher(spec, "cpu", prompts)
