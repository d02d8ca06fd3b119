"""One place that turns what a user asks for into a checked config, and checks a run before it starts.

Layers, weakest first (DESIGN rule 4): the config class's defaults < a preset file < a guidance preset
(text-to-3D's ``--guidance``) < flags < ``key=value`` overrides. The command line, the web demo and
the text-to-3D benchmark all resolve here, so a flag means the same everywhere and ``--divergence``
reaches the guidance one way: as the key ``guidance.divergence``.

Everything that can be checked without the teacher is checked here, before any work starts and
before anything is written: config values, the output folder, a resumed run's checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ui3d.config import ConfigError, from_dict, merge, parse_overrides, read_yaml, to_dict
from ui3d.errors import UserError, user_input
from ui3d.io import check_output_folder

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
CHECKPOINT = "checkpoint.pt"
T = TypeVar("T")


def nest(flat: Mapping[str, Any]) -> dict:
    """``{"guidance.divergence": "js", "seed": None}`` -> ``{"guidance": {"divergence": "js"}}``;
    None means "not given" and is left out."""
    out: dict = {}
    for key, value in flat.items():
        if value is None:
            continue
        *sections, name = key.split(".")
        node = out
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = value
    return out


def resolve(cls: type[T], preset: str | Path | None = None, layers: Sequence[Mapping[str, Any]] = (),
            overrides: Sequence[str] = (), base: Mapping[str, Any] | None = None) -> T:
    """``base`` < the ``preset`` YAML file < each of ``layers`` (dotted keys; None = not given) <
    ``key=value`` overrides, checked strictly into ``cls``."""
    data = dict(base or {})
    if preset is not None:
        data = merge(data, read_yaml(preset))
    for layer in layers:
        data = merge(data, nest(layer))
    return from_dict(cls, merge(data, parse_overrides(overrides)))


def preset_path(kind: str, name: str, flag: str = "--preset") -> Path:
    """``configs/<kind>/<name>.yaml``, found from the repository, not the working folder."""
    path = CONFIG_DIR / kind / f"{name}.yaml"
    if not path.is_file():
        choices = ", ".join(sorted(p.stem for p in (CONFIG_DIR / kind).glob("*.yaml")))
        raise UserError(f"{flag} '{name}': no such preset (choices: {choices})")
    return path


# --- text to 3D --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GenerateRequest:
    """What a user asks ``ui3d generate`` or the web demo for, named like the flags; None = the preset's value."""

    prompt: str | None = None
    negative_prompt: str | None = None
    teacher: str | None = None  # None: sd where CUDA is present, else builtin (unless the preset file names one)
    backend: str | None = None
    guidance: str | None = None  # a guidance preset (sds | vsd | uni-instruct): replaces the file's guidance section
    divergence: str | None = None
    preset: str = "fast"  # configs/text_to_3d/<preset>.yaml
    config: str | Path | None = None  # a YAML file instead of the preset
    steps: int | None = None
    seed: int | None = None
    device: str | None = None
    overrides: tuple[str, ...] = ()


def text_to_3d_config(request: GenerateRequest):
    """The TextTo3DConfig for a request: preset file < guidance preset < flags < overrides."""
    from systems.text_to_3d import TextTo3DConfig
    from ui3d.teachers.loading import default_teacher_spec

    preset = Path(request.config) if request.config else preset_path("text_to_3d", request.preset)
    flags = {"prompt": request.prompt, "negative_prompt": request.negative_prompt, "teacher": request.teacher,
             "backend": request.backend, "guidance.divergence": request.divergence, "steps": request.steps,
             "seed": request.seed, "device": request.device}
    layers = [_guidance_layer(request.guidance), _oracle_layer(request.teacher), flags]
    cfg = resolve(TextTo3DConfig, preset, layers, request.overrides, base={"teacher": default_teacher_spec()})
    check_device(cfg.device)
    return cfg


def _guidance_layer(name: str | None) -> dict:
    """A guidance preset as a whole ``guidance`` section ({} when none was asked for)."""
    if name is None:
        return {}
    from ui3d.guidance import guidance_preset

    with user_input():
        return {"guidance": to_dict(guidance_preset(name))}


def _oracle_layer(teacher: str | None) -> dict:
    """The world's oracles (``--teacher exact-view | exact-camera``) are exact only for renders on their
    own background (``ORACLE_BACKGROUND``): their runs render the scene on it, whatever background the
    preset trains on (they take no textureless steps either: ``teacher_textureless_prob``). Overrides
    still win."""
    from ui3d.teachers.oracle import ORACLE_BACKGROUND, ORACLE_SPECS

    if teacher not in ORACLE_SPECS:
        return {}
    solid = {"background": {"kind": "solid", "colour": list(ORACLE_BACKGROUND)}}
    return {"nerf": solid, "gaussians": solid}


def check_device(device: str) -> None:
    """A device torch knows and this machine has."""
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise UserError(f"--device '{device}': expected cpu or cuda (or cuda:N)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available on this machine; use --device cpu")


def resume_config(cls: type[T], run_dir: str | Path, overrides: Sequence[str] = ()) -> T:
    """A run folder's own config.yaml; only ``steps`` may change (more steps continue the run)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file() or not (run_dir / CHECKPOINT).is_file():
        raise UserError(f"--resume '{run_dir}': not a run folder (needs config.yaml and {CHECKPOINT})")
    if set(parse_overrides(overrides)) - {"steps"}:
        raise UserError("--resume takes only --steps N (or steps=N); the rest is the run's config.yaml")
    try:
        return resolve(cls, run_dir / "config.yaml", overrides=overrides)
    except ConfigError as err:
        raise ConfigError(f"--resume '{run_dir}': config.yaml: {err}") from None


def check_generate_run(cfg, run_dir: Path, resume: bool, flag: str = "--out") -> None:
    """What a text-to-3D run needs before any work: a folder it can write; on resume a checkpoint that
    reads and holds the scene config.yaml describes; prompts its teacher can read."""
    from ui3d.teachers.loading import check_prompts

    check_output_folder(run_dir, "--resume" if resume else flag)
    if resume:
        check_checkpoint_fits(cfg, run_dir)
    with user_input():
        check_prompts(cfg.teacher, [cfg.prompt, cfg.negative_prompt])


def check_checkpoint_fits(cfg, run_dir: Path) -> None:
    """The run's checkpoint reads (weights only) and its scene has the parameters of cfg's backend:
    a config.yaml edited from nerf to gaussians is refused here, not after the teacher has loaded."""
    from systems.base import load_checkpoint
    from ui3d.scene.base import build_scene

    with user_input():
        state = load_checkpoint(run_dir / CHECKPOINT)
    saved = state.get("scene") if isinstance(state, dict) else None
    if not isinstance(saved, Mapping):
        raise UserError(f"--resume '{run_dir}': {CHECKPOINT} holds no scene")
    expected = build_scene(cfg.backend, to_dict(getattr(cfg, cfg.backend))).state_dict()
    if set(saved) != set(expected):
        raise UserError(f"--resume '{run_dir}': {CHECKPOINT} holds another scene than config.yaml's backend "
                        f"'{cfg.backend}' (was config.yaml edited after the run started?)")


def run_complete(run_dir: Path, steps: int) -> bool:
    """A run folder whose export is written (metrics.json) after ``steps`` steps: nothing left to do."""
    from ui3d.io import read_json

    try:
        return int(read_json(run_dir / "metrics.json")["steps"]) >= steps
    except (OSError, ValueError, KeyError, TypeError):
        return False
