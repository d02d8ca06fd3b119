"""The built-in teacher: a small pixel-space text-conditional diffusion model of the built-in world.

Same conventions as Stable Diffusion (:mod:`ui3d.teachers.protocol`): ε-prediction, the
``scaled_linear`` VP schedule with 1000 steps, classifier-free guidance (trained by caption
dropout to the empty prompt). The model is a diffusers ``UNet2DConditionModel`` on 32×32 RGB in
[-1, 1] with cross-attention only at the 8×8 level (attention at 16×16 halves CPU speed), plus the
pooled text embedding added to the timestep embedding; the text encoder is
:class:`ui3d.teachers.text.TextEncoder` over a word-level vocabulary (unknown words are errors).

Weights are one safetensors file whose metadata holds the config and vocabulary as JSON
(:func:`save_teacher` / :func:`load_teacher`); loading never unpickles. The shipped file is
``assets/builtin_teacher.safetensors`` (card: ``assets/BUILTIN_TEACHER.md``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from ui3d.diffusion import VPSchedule
from ui3d.io import atomic_path, read_safetensors
from ui3d.teachers.protocol import pixel_decode, pixel_encode
from ui3d.teachers.text import TextEncoder, TextEncoderConfig, WordTokenizer

__all__ = [
    "ASSETS_DIR",
    "DEFAULT_TEACHER_PATH",
    "BuiltinTeacherConfig",
    "BuiltinTeacherModel",
    "BuiltinTeacher",
    "save_teacher",
    "load_teacher_model",
]

ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"
DEFAULT_TEACHER_PATH = ASSETS_DIR / "builtin_teacher.safetensors"
KIND = "ui3d.builtin_teacher"


@dataclass(frozen=True)
class BuiltinTeacherConfig:
    resolution: int = 32
    channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    attention_head_dim: int = 8
    norm_groups: int = 8
    text_dim: int = 64
    text_layers: int = 2
    text_heads: int = 4
    max_length: int = 12
    num_train_timesteps: int = 1000
    camera_dim: int = 0  # 0: text only (v1); 7: camera-conditioned (v2); 15: with azimuth harmonics (camera_inputs)
    camera_rays: bool = False  # the camera's ray at every pixel as 6 more input channels (camera_ray_map)

    def __post_init__(self) -> None:
        from ui3d.config import FieldValueError, check_ranges

        if self.camera_dim not in CAMERA_DIMS:
            raise ValueError(f"camera_dim: expected one of {CAMERA_DIMS}, got {self.camera_dim}")
        if self.camera_rays and not self.camera_dim:
            raise ValueError("camera_rays: needs a camera-conditioned model (camera_dim > 0)")
        # upper bounds: a teacher is trained and queried on a CPU (the shipped one is 32², 64 channels)
        check_ranges(self, resolution=(8, 256), layers_per_block=(1, 8), attention_head_dim=(1, 1024),
                     norm_groups=(1, 1024), text_dim=(1, 1024), text_layers=(1, 32), text_heads=(1, 64),
                     max_length=(3, 256), num_train_timesteps=(1, 100_000))
        if not 1 <= len(self.channels) <= 6 or not all(1 <= c <= 1024 for c in self.channels):
            raise FieldValueError("channels", f"expected 1 to 6 levels of 1 to 1024 channels each, "
                                              f"got {list(self.channels)}")
        if any(c % self.norm_groups for c in self.channels):  # GroupNorm splits every level's channels
            raise FieldValueError("norm_groups", f"{self.norm_groups} must divide every level's channels "
                                                 f"{list(self.channels)}")
        if self.text_dim % self.text_heads:
            raise FieldValueError("text_heads", f"{self.text_heads} must divide text_dim {self.text_dim}")
        if self.resolution % (2 ** (len(self.channels) - 1)):
            raise ValueError(
                f"resolution {self.resolution} must be divisible by 2^{len(self.channels) - 1} (channels {self.channels})"
            )


CAMERA_FEATURES = 7
DISTANCE_SCALE, FOVY_SCALE = (1.75, 0.25), (55.0, 15.0)  # (centre, half-range) of the sampler's ranges


def camera_features(azimuth_deg: Tensor, elevation_deg: Tensor, distance: Tensor, fovy_deg: Tensor) -> Tensor:
    """The teacher's camera condition [B, 7]: sin/cos of azimuth and elevation, distance and field of
    view scaled to about [-1, 1] over the sampler's ranges, and a 1 that says "a camera is given".
    All zeros (:func:`no_camera`) is the unconditional camera, as trained by camera dropout."""
    az, el = torch.deg2rad(azimuth_deg.float()), torch.deg2rad(elevation_deg.float())
    return torch.stack([az.sin(), az.cos(), el.sin(), el.cos(), (distance.float() - DISTANCE_SCALE[0]) / DISTANCE_SCALE[1],
                        (fovy_deg.float() - FOVY_SCALE[0]) / FOVY_SCALE[1], torch.ones_like(az)], dim=1)


def no_camera(batch: int, device: torch.device | str = "cpu") -> Tensor:
    return torch.zeros(batch, CAMERA_FEATURES, device=device)


CAMERA_WITH_HARMONICS = CAMERA_FEATURES + 8  # the default teacher's input (camera_inputs)
CAMERA_DIMS = (0, CAMERA_FEATURES, CAMERA_WITH_HARMONICS)


def camera_inputs(features: Tensor, dim: int) -> Tensor:
    """The network's camera input [B, dim] from :func:`camera_features` [B, 7]. ``dim`` 7 takes them as
    they are; 15 appends sin/cos of 2, 3 and 4 × the azimuth and of 2 × the elevation, so that what
    repeats every 90° of azimuth (a cube's outline) is linear in the input. A cube's renders change
    with the turn only through cos/sin(4k × azimuth), orthogonal to the sin/cos of the 7 features, and
    the 7-feature teacher never learned it; given these columns the same network does
    (docs/benchmarks.md, "A teacher blind to the cube's turn"). No camera (all zeros) stays all zeros."""
    if dim == CAMERA_FEATURES:
        return features
    az, el = torch.atan2(features[:, 0], features[:, 1]), torch.atan2(features[:, 2], features[:, 3])
    angles = torch.stack([2 * az, 3 * az, 4 * az, 2 * el], dim=1)
    given = features[:, 6:7]
    harmonics = torch.stack([angles.sin(), angles.cos()], dim=2).flatten(1) * given
    return torch.cat([features, harmonics], dim=1)


RAY_CHANNELS = 6


def camera_ray_map(features: Tensor, resolution: int) -> Tensor:
    """[B, 6, r, r]: the Plücker coordinates (direction d, moment o × d) of the ray through every
    pixel of the camera that :func:`camera_features` [B, 7] describe (looking at the origin), as
    CAT3D and Zero123++ feed cameras to an image network: unlike one vector added to the timestep
    embedding, every pixel sees where it looks from. No camera (all zeros) gives all zeros."""
    from ui3d.cameras import camera_rays, cameras_from_spherical

    f = features.float()
    cams = cameras_from_spherical(torch.rad2deg(torch.atan2(f[:, 0], f[:, 1])), torch.rad2deg(torch.atan2(f[:, 2], f[:, 3])),
                                  f[:, 4] * DISTANCE_SCALE[1] + DISTANCE_SCALE[0], f[:, 5] * FOVY_SCALE[1] + FOVY_SCALE[0],
                                  resolution)
    with torch.autocast(f.device.type, enabled=False):  # geometry in fp32, also under bf16 autocast
        origins, dirs = camera_rays(cams)
        rays = torch.cat([dirs, torch.cross(origins, dirs, dim=-1)], dim=-1).permute(0, 3, 1, 2)
    return rays * f[:, 6].view(-1, 1, 1, 1)


def _build_unet(cfg: BuiltinTeacherConfig) -> nn.Module:
    from diffusers import UNet2DConditionModel

    n = len(cfg.channels)
    return UNet2DConditionModel(
        sample_size=cfg.resolution,
        in_channels=3 + (RAY_CHANNELS if cfg.camera_rays else 0),
        out_channels=3,
        block_out_channels=tuple(cfg.channels),
        down_block_types=("DownBlock2D",) * (n - 1) + ("CrossAttnDownBlock2D",),
        up_block_types=("CrossAttnUpBlock2D",) + ("UpBlock2D",) * (n - 1),
        mid_block_type="UNetMidBlock2DCrossAttn",
        layers_per_block=cfg.layers_per_block,
        cross_attention_dim=cfg.text_dim,
        attention_head_dim=cfg.attention_head_dim,
        norm_num_groups=cfg.norm_groups,
        class_embed_type="projection",
        projection_class_embeddings_input_dim=cfg.text_dim + cfg.camera_dim,  # pooled text (+ camera)
    )


class BuiltinTeacherModel(nn.Module):
    """Tokenizer + text encoder + UNet. ``forward(x_t, t, hidden) -> ε̂``."""

    def __init__(self, config: BuiltinTeacherConfig = BuiltinTeacherConfig(), tokenizer: WordTokenizer | None = None):
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer or WordTokenizer.builtin(config.max_length)
        if self.tokenizer.max_length != config.max_length:
            raise ValueError(f"tokenizer max_length {self.tokenizer.max_length} != config {config.max_length}")
        self.text_encoder = TextEncoder(
            TextEncoderConfig(len(self.tokenizer), config.max_length, config.text_dim, config.text_layers, config.text_heads)
        )
        self.unet = _build_unet(config)

    def encode_text(self, prompts: Sequence[str]) -> Tensor:
        ids = self.tokenizer(list(prompts)).to(self.text_encoder.position.device)
        return self.text_encoder(ids)

    def forward(self, x_t: Tensor, t: Tensor, hidden: Tensor, camera: Tensor | None = None) -> Tensor:
        """ε̂; ``camera`` [B, CAMERA_FEATURES] (:func:`camera_features`) for a camera-conditioned model,
        None = no camera (zeros); a text-only model ignores it. The model widens it to its own
        ``camera_dim`` (:func:`camera_inputs`)."""
        t = torch.as_tensor(t, device=x_t.device).reshape(-1).expand(x_t.shape[0])
        label = hidden[:, 0]
        if self.config.camera_dim:
            camera = no_camera(x_t.shape[0], x_t.device) if camera is None else camera.to(x_t.device)
            label = torch.cat([label, camera_inputs(camera.float(), self.config.camera_dim).to(label.dtype)], dim=1)
            if self.config.camera_rays:
                x_t = torch.cat([x_t, camera_ray_map(camera, x_t.shape[-1]).to(x_t)], dim=1)
        return self.unet(x_t, t, encoder_hidden_states=hidden, class_labels=label, return_dict=False)[0]

    def load_warm_start(self, state: dict[str, Tensor]) -> None:
        """Start from a teacher with fewer camera inputs (a text-only one, 7 features for 15, no ray
        map for one): the new input columns of the class projection and of the first convolution
        start at zero, so the new model predicts exactly what the old one did."""
        state = dict(state)
        for key in ("unet.class_embedding.linear_1.weight", "unet.conv_in.weight"):
            weight, wanted = state[key], self.state_dict()[key].shape[1]
            if weight.shape[1] < wanted:
                pad = weight.new_zeros(weight.shape[0], wanted - weight.shape[1], *weight.shape[2:])
                state[key] = torch.cat([weight, pad], dim=1)
        self.load_state_dict(state, strict=True)


# --- files -------------------------------------------------------------------------------------

def save_teacher(model: BuiltinTeacherModel, path: str | Path, info: dict | None = None) -> Path:
    """Write weights + config + vocabulary (+ ``info``: training facts) atomically as safetensors."""
    from safetensors.torch import save_file

    meta = {
        "kind": KIND,
        "config": json.dumps(asdict(model.config)),
        "tokenizer": json.dumps(model.tokenizer.to_dict()),
        "info": json.dumps(info or {}),
    }
    tensors = {k: v.detach().float().contiguous().cpu() for k, v in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def _config_from_json(text: str) -> BuiltinTeacherConfig:
    data = json.loads(text)
    data["channels"] = tuple(data["channels"])
    return BuiltinTeacherConfig(**data)


def load_teacher_model(path: str | Path = DEFAULT_TEACHER_PATH) -> tuple[BuiltinTeacherModel, dict]:
    """The model (eval mode, frozen) and its ``info`` dict."""
    tensors, meta = read_safetensors(path, KIND)
    try:
        config = _config_from_json(meta["config"])
        tokenizer = WordTokenizer.from_dict(json.loads(meta["tokenizer"]))
        info = json.loads(meta.get("info", "{}"))
        model = BuiltinTeacherModel(config, tokenizer)
        model.load_state_dict(tensors, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        from ui3d.errors import UserError, clip

        raise UserError(f"weights file '{path}' does not hold a valid built-in teacher "
                        f"({clip(' '.join(str(err).split()))})") from None
    model.eval().requires_grad_(False)
    return model, info


# --- the Teacher ---------------------------------------------------------------------------------

def bf16_is_fast(device: str) -> bool:
    """Whether bf16 autocast speeds this device up. On CPUs only with native bf16 (AVX512-BF16 or
    AMX): on an AVX2-only CPU a teacher forward at batch 8 took 3.5 s in bf16 and 0.095 s in fp32."""
    if torch.device(device).type == "cuda":
        return True
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # private helpers: absent in some torch builds; fp32 is always safe
        return False


class BuiltinTeacher:
    """The built-in teacher behind the :class:`~ui3d.teachers.protocol.Teacher` interface.

    ``encode`` maps renders in [0, 1] (any size; resized to the model's resolution with
    antialiasing) to pixels in [-1, 1]; ``decode`` is its inverse. ``autocast``: bf16 autocast
    (the precision the model was trained in); ``None`` = decided at each forward for the input's
    device: only where it has fast bf16 (see :func:`bf16_is_fast`).
    """

    def __init__(self, model: BuiltinTeacherModel, autocast: bool | None = None, info: dict | None = None):
        self.model = model.eval().requires_grad_(False)
        self.config = model.config
        self.schedule = VPSchedule.scaled_linear(model.config.num_train_timesteps)
        self.autocast = autocast
        self.info = info or {}

    @staticmethod
    def load(path: str | Path = DEFAULT_TEACHER_PATH, autocast: bool | None = None) -> "BuiltinTeacher":
        model, info = load_teacher_model(path)
        return BuiltinTeacher(model, autocast, info)

    @property
    def alphas_cumprod(self) -> Tensor:
        return self.schedule.alphas_cumprod

    @property
    def resolution(self) -> int:
        return self.config.resolution

    @property
    def tokenizer(self) -> WordTokenizer:
        return self.model.tokenizer

    def encode(self, rgb: Tensor) -> Tensor:
        return pixel_encode(rgb, self.resolution)

    def decode(self, x: Tensor) -> Tensor:
        return pixel_decode(x)

    def check_prompts(self, prompts: Sequence[str]) -> None:
        for p in prompts:
            self.tokenizer.check(p)

    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[str]) -> Tensor:
        if isinstance(prompts, str):
            prompts = [prompts]
        return self.model.encode_text(list(prompts)).float()

    def eps_network(self) -> nn.Module:
        """The ε-network (``forward(x_t, t, hidden)``, UNet at ``.unet``) that a LoRA fake score copies."""
        return self.model

    clip_sample = True  # pixels in [−1, 1]

    @property
    def takes_camera(self) -> bool:
        return bool(self.config.camera_dim)

    def predict_eps(self, x_t: Tensor, t: Tensor, embeddings: Tensor, camera=None) -> Tensor:
        """ε̂; ``camera`` (:class:`~ui3d.cameras.Cameras`) conditions a camera-conditioned model, None
        leaves it unconditional on the camera."""
        dev = x_t.device
        use_bf16 = bf16_is_fast(dev.type) if self.autocast is None else self.autocast
        features = None
        if camera is not None and self.takes_camera:
            features = camera_features(camera.azimuth_deg, camera.elevation_deg, camera.distance, camera.fovy_deg)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_bf16):
            eps = self.model(x_t, t, embeddings.to(dev), features)
        return eps.float()


def forward_seconds(teacher: BuiltinTeacher, batch: int = 8, repeats: int = 20) -> float:
    """Median wall time of one ε forward (no guidance) at the given batch size, after a warm-up."""
    import time

    x = torch.randn(batch, 3, teacher.resolution, teacher.resolution)
    emb = teacher.encode_prompts(["a red cube"] * batch)
    t = torch.full((batch,), 500, dtype=torch.long)
    times = []
    with torch.no_grad():
        for i in range(repeats + 2):
            t0 = time.perf_counter()
            teacher.predict_eps(x, t, emb)
            if i >= 2:
                times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]
