"""Teachers and real data for one-step image distillation, checked at the boundary.

- ``builtin``: the built-in teacher, conditional on the world's object × colour captions, with
  fresh world renders of the same captions as the discriminator's real data.
- a diffusers ``UNet2DModel`` checkpoint (hub id or local folder, root or ``unet/`` layout; its
  DDPM scheduler config beside it), unconditional, with an image folder as real data.

User errors (mismatched resolution or channels, an empty or unreadable folder, a checkpoint of
another architecture) raise ValueError naming both sides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
import torch
from torch import Tensor, nn

from ui3d.diffusion import VPSchedule

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


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
    raise ValueError(f"scheduler beta_schedule '{kind}' is not supported (linear, scaled_linear, squaredcos_cap_v2)")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"'{path}' is not a readable JSON config ({err})") from None


def _local_layout(folder: Path) -> tuple[Path, Path | None]:
    """(model config folder, scheduler config file or None) of a local checkpoint folder."""
    for sub in (folder / "unet", folder):
        if (sub / "config.json").is_file():
            sched = [p for p in (folder / "scheduler" / "scheduler_config.json", folder / "scheduler_config.json") if p.is_file()]
            return sub, (sched[0] if sched else None)
    raise ValueError(f"--teacher '{folder}': no config.json (nor unet/config.json) in the folder; "
                     "expected a diffusers UNet2DModel checkpoint")


def load_unet2d(spec: str) -> ImageTeacher:
    """A UNet2DModel teacher from a local folder or (when cached) a hub id."""
    from diffusers import UNet2DModel

    folder = Path(spec)
    if folder.exists():
        if not folder.is_dir():
            raise ValueError(f"--teacher '{spec}' is a file, expected a diffusers checkpoint folder")
        model_dir, sched_file = _local_layout(folder)
    else:
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(spec, allow_patterns=["*.json", "*.safetensors", "*.bin", "unet/*", "scheduler/*"]))
        except Exception as err:  # offline, unknown id, no cache: one clear line
            raise ValueError(f"--teacher '{spec}': cannot load it from the hub ({type(err).__name__}); "
                             "download it elsewhere and pass the local folder") from None
        model_dir, sched_file = _local_layout(folder)
    config = _read_json(model_dir / "config.json")
    cls = config.get("_class_name")
    if cls != "UNet2DModel":
        raise ValueError(f"--teacher '{spec}' holds a {cls or 'model without _class_name'}, expected a diffusers "
                         "UNet2DModel (pixel-space DDPM checkpoint)")
    try:
        unet = UNet2DModel.from_pretrained(model_dir, use_safetensors=any(model_dir.glob("*.safetensors")) or None)
    except Exception as err:
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ValueError(f"--teacher '{spec}': weights do not fit its UNet2DModel config ({first})") from None
    sched_cfg = _read_json(sched_file) if sched_file else {}
    prediction = sched_cfg.get("prediction_type", "epsilon")
    return ImageTeacher(spec, UNet2DEps(unet).eval().requires_grad_(False), _schedule_from_config(sched_cfg),
                        prediction, int(unet.config.in_channels), int(unet.config.sample_size))


def load_image_teacher(spec: str) -> ImageTeacher:
    if spec == "builtin":
        return load_builtin()
    if spec.endswith(".safetensors"):
        return load_builtin(spec)
    return load_unet2d(spec)


# --- real data -----------------------------------------------------------------------------------

class ImageFolderData:
    """Every image under a folder, loaded once as uint8, checked against the teacher."""

    def __init__(self, folder: str | Path, teacher: ImageTeacher):
        from PIL import Image, UnidentifiedImageError

        folder = Path(folder)
        if not folder.is_dir():
            raise ValueError(f"--data '{folder}' is not a folder")
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise ValueError(f"--data '{folder}' holds no images ({', '.join(IMAGE_SUFFIXES)}); "
                             f"{teacher.describe()} needs real images")
        mode = {1: "L", 3: "RGB"}.get(teacher.channels)
        if mode is None:
            raise ValueError(f"{teacher.describe()}: only 1- or 3-channel teachers can use an image folder")
        arrays = []
        for path in files:
            try:
                with Image.open(path) as im:
                    im.load()
                    channels = len(im.getbands()) - (1 if im.mode in ("RGBA", "LA") else 0)
                    size = im.size
                    im = im.convert(mode)
            except (UnidentifiedImageError, OSError) as err:
                raise ValueError(f"--data: '{path}' cannot be read as an image ({type(err).__name__})") from None
            if size != (teacher.resolution, teacher.resolution) or (channels != teacher.channels and im.mode != "P"):
                raise ValueError(f"--data image '{path.name}' is {size[0]}×{size[1]} with {channels} channels, but "
                                 f"{teacher.describe()} expects {teacher.resolution}×{teacher.resolution} with "
                                 f"{teacher.channels} channels")
            arrays.append(torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8))
        r, c = teacher.resolution, teacher.channels
        self.images = torch.stack(arrays).view(len(files), r, r, c).permute(0, 3, 1, 2).contiguous()
        self.folder = folder

    def __len__(self) -> int:
        return self.images.shape[0]

    def sample(self, index: Tensor) -> Tensor:
        """Images at ``index`` in [−1, 1]."""
        return self.images[index].float().div(127.5).sub(1.0)


def world_renders(captions: list[str], cameras_seed: int, shard: slice, resolution: int = 32) -> Tensor:
    """Renders of ``captions[shard]`` from random dataset cameras drawn for all captions with a
    fixed seed (so every process of a data-parallel run draws the same cameras), in [−1, 1]."""
    from ui3d.cameras import sample_random_cameras
    from ui3d.world.captions import parse_prompt
    from ui3d.world.dataset import _dataset_cameras
    from ui3d.world.render import render_world

    gen = torch.Generator().manual_seed(cameras_seed)
    cams = sample_random_cameras(len(captions), resolution, _dataset_cameras(), gen)[shard]
    out = render_world([parse_prompt(c).to_object() for c in captions[shard]], cams, ss=2)
    return out.rgb.permute(0, 3, 1, 2).mul(2).sub(1).contiguous()

