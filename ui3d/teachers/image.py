"""Image teachers for one-step distillation: a frozen VP network and what distillation needs to
know about it, loaded and checked at the boundary.

- ``builtin``: the built-in teacher, conditional on the world's object × colour captions.
- a diffusers ``UNet2DModel`` checkpoint (hub id or local folder, root or ``unet/`` layout; its
  DDPM scheduler config beside it), unconditional.

A checkpoint of another architecture, or weights that do not fit their config, raise UserError
naming the checkpoint. The guidance queries these networks through
:class:`ui3d.teachers.guided.GuidedNetwork`; the generator and the full-copy fake score start from
:func:`trainable_copy` of them.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from ui3d.diffusion import PREDICTIONS, VPSchedule
from ui3d.errors import UserError


@dataclass
class ImageTeacher:
    """A frozen VP teacher network with what distillation needs to know about it."""

    spec: str
    network: nn.Module  # forward(x_t, t, cond) -> prediction
    schedule: VPSchedule
    prediction: str
    channels: int
    resolution: int
    captions: list[str] = field(default_factory=list)  # conditional teachers: the training captions
    embeddings: Tensor | None = None  # [n_captions, ...] for the captions
    uncond: Tensor | None = None  # [1, ...] the empty prompt

    @property
    def conditional(self) -> bool:
        return self.embeddings is not None

    def describe(self) -> str:
        return f"teacher '{self.spec}' ({self.resolution}×{self.resolution}, {self.channels} channels)"


# --- the built-in teacher --------------------------------------------------------------------------

def load_builtin(path: str | Path | None = None) -> ImageTeacher:
    from ui3d.metrics.judge import object_colour_captions
    from ui3d.teachers.builtin import DEFAULT_TEACHER_PATH, load_teacher_model

    model, _ = load_teacher_model(path or DEFAULT_TEACHER_PATH)
    captions = [row[0] for row in object_colour_captions()]
    with torch.no_grad():
        emb, uncond = model.encode_text(captions).float(), model.encode_text([""]).float()
    return ImageTeacher("builtin" if path is None else str(path), model, VPSchedule.scaled_linear(model.config.num_train_timesteps),
                        "epsilon", 3, model.config.resolution, captions, emb, uncond)


# --- diffusers UNet2DModel ------------------------------------------------------------------------

class UNet2DEps(nn.Module):
    """A diffusers UNet2DModel behind ``forward(x_t, t, cond)``; cond: class labels or None."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        return self.unet(x_t, t, class_labels=cond, return_dict=False)[0]


def _schedule_from_config(cfg: dict) -> VPSchedule:
    n = int(cfg.get("num_train_timesteps", 1000))
    kind = cfg.get("beta_schedule", "linear")
    start, end = float(cfg.get("beta_start", 1e-4)), float(cfg.get("beta_end", 0.02))
    if kind == "linear":
        return VPSchedule.linear(n, start, end)
    if kind == "scaled_linear":
        return VPSchedule.scaled_linear(n, start, end)
    if kind == "squaredcos_cap_v2":
        import math

        f = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        betas = torch.tensor([min(1 - f((i + 1) / n) / f(i / n), 0.999) for i in range(n)], dtype=torch.float64)
        return VPSchedule(torch.cumprod(1.0 - betas, 0).float())
    raise UserError(f"scheduler beta_schedule '{kind}' is not supported (linear, scaled_linear, squaredcos_cap_v2)")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"'{path}' is not a readable JSON config ({err})") from None


def _local_layout(folder: Path) -> tuple[Path, Path | None]:
    """(model config folder, scheduler config file or None) of a local checkpoint folder."""
    for sub in (folder / "unet", folder):
        if (sub / "config.json").is_file():
            sched = [p for p in (folder / "scheduler" / "scheduler_config.json", folder / "scheduler_config.json") if p.is_file()]
            return sub, (sched[0] if sched else None)
    raise UserError(f"--teacher '{folder}': no config.json (nor unet/config.json) in the folder; "
                    "expected a diffusers UNet2DModel checkpoint")


def load_unet2d(spec: str) -> ImageTeacher:
    """A UNet2DModel teacher from a local folder or (when cached) a hub id."""
    from diffusers import UNet2DModel

    folder = Path(spec)
    if folder.exists():
        if not folder.is_dir():
            raise UserError(f"--teacher '{spec}' is a file, expected a diffusers checkpoint folder")
        model_dir, sched_file = _local_layout(folder)
    else:
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(spec, allow_patterns=["*.json", "*.safetensors", "*.bin", "unet/*", "scheduler/*"]))
        except Exception as err:  # offline, unknown id, no cache: one clear line
            raise UserError(f"--teacher '{spec}': cannot load it from the hub ({type(err).__name__}); "
                            "download it elsewhere and pass the local folder") from None
        model_dir, sched_file = _local_layout(folder)
    config = _read_json(model_dir / "config.json")
    cls = config.get("_class_name")
    if cls != "UNet2DModel":
        raise UserError(f"--teacher '{spec}' holds a {cls or 'model without _class_name'}, expected a diffusers "
                        "UNet2DModel (pixel-space DDPM checkpoint)")
    try:
        unet = UNet2DModel.from_pretrained(model_dir, use_safetensors=any(model_dir.glob("*.safetensors")) or None)
    except Exception as err:
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise UserError(f"--teacher '{spec}': weights do not fit its UNet2DModel config ({first})") from None
    sched_cfg = _read_json(sched_file) if sched_file else {}
    prediction = sched_cfg.get("prediction_type", "epsilon")
    if prediction not in PREDICTIONS:
        raise UserError(f"--teacher '{spec}': scheduler prediction_type '{prediction}' is not supported "
                        f"({', '.join(PREDICTIONS)})")
    return ImageTeacher(spec, UNet2DEps(unet).eval().requires_grad_(False), _schedule_from_config(sched_cfg),
                        prediction, int(unet.config.in_channels), int(unet.config.sample_size))


def load_image_teacher(spec: str) -> ImageTeacher:
    if spec == "builtin":
        return load_builtin()
    if spec.endswith(".safetensors"):
        return load_builtin(spec)
    return load_unet2d(spec)


def trainable_copy(network: nn.Module) -> nn.Module:
    """A copy of a teacher network whose U-Net trains and whose other parts (the built-in teacher's
    text encoder) stay frozen."""
    network = copy.deepcopy(network)
    network.requires_grad_(False)
    getattr(network, "unet", network).requires_grad_(True)
    return network
