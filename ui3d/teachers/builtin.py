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
from ui3d.teachers.protocol import Teacher, guided_eps, pixel_decode, pixel_encode
from ui3d.teachers.text import TextEncoder, TextEncoderConfig, WordTokenizer

__all__ = [
    "ASSETS_DIR",
    "DEFAULT_TEACHER_PATH",
    "BuiltinTeacherConfig",
    "BuiltinTeacherModel",
    "BuiltinTeacher",
    "save_teacher",
    "load_teacher_model",
    "read_safetensors",
    "sample_images",
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

    def __post_init__(self) -> None:
        if self.resolution % (2 ** (len(self.channels) - 1)):
            raise ValueError(
                f"resolution {self.resolution} must be divisible by 2^{len(self.channels) - 1} (channels {self.channels})"
            )


def _build_unet(cfg: BuiltinTeacherConfig) -> nn.Module:
    from diffusers import UNet2DConditionModel

    n = len(cfg.channels)
    return UNet2DConditionModel(
        sample_size=cfg.resolution,
        in_channels=3,
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
        projection_class_embeddings_input_dim=cfg.text_dim,
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

    def forward(self, x_t: Tensor, t: Tensor, hidden: Tensor) -> Tensor:
        t = torch.as_tensor(t, device=x_t.device).reshape(-1).expand(x_t.shape[0])
        out = self.unet(x_t, t, encoder_hidden_states=hidden, class_labels=hidden[:, 0], return_dict=False)[0]
        return out


# --- files -------------------------------------------------------------------------------------

def read_safetensors(path: str | Path, kind: str) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file of the given ``kind``; ValueError naming the
    file when it is missing, unreadable, corrupt or of another kind. Never unpickles."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights file '{path}' not found")
    try:
        tensors = {}
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            for k in f.keys():
                tensors[k] = f.get_tensor(k)
    except Exception as err:  # safetensors raises its own error types for corrupt headers/data
        raise ValueError(f"weights file '{path}' is not a readable safetensors file ({err})") from None
    if meta.get("kind") != kind:
        raise ValueError(f"weights file '{path}' is not a {kind} file (metadata kind {meta.get('kind')!r})")
    return tensors, meta


def save_teacher(model: BuiltinTeacherModel, path: str | Path, info: dict | None = None) -> Path:
    """Write weights + config + vocabulary (+ ``info``: training facts) atomically as safetensors."""
    from safetensors.torch import save_file

    from ui3d.io import atomic_path

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
        raise ValueError(f"weights file '{path}' does not hold a valid built-in teacher ({str(err)[:200]})") from None
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

    def predict_eps(self, x_t: Tensor, t: Tensor, embeddings: Tensor) -> Tensor:
        dev = x_t.device
        use_bf16 = bf16_is_fast(dev.type) if self.autocast is None else self.autocast
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_bf16):
            eps = self.model(x_t, t, embeddings.to(dev))
        return eps.float()


# --- sampling ------------------------------------------------------------------------------------

def ddim_timesteps(schedule: VPSchedule, steps: int) -> Tensor:
    """Descending integer timesteps (diffusers' DDIM "leading" spacing, shifted so t=T−1 starts)."""
    if steps < 1:
        raise ValueError(f"steps: expected >= 1, got {steps}")
    T = schedule.num_train_timesteps
    ts = torch.linspace(T - 1, 0, steps).round().long()
    return ts


@torch.no_grad()
def sample_images(
    teacher: Teacher,
    prompts: Sequence[str],
    steps: int = 50,
    cfg: float = 4.0,
    generator: torch.Generator | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> Tensor:
    """Deterministic DDIM (η = 0) with classifier-free guidance; images [B, 3, r, r] in [0, 1]."""
    prompts = list(prompts)
    if not prompts:
        raise ValueError("prompts: expected at least one prompt")
    gen = generator or torch.Generator().manual_seed(0)
    r = getattr(teacher, "resolution", 32)
    noise = torch.randn(len(prompts), 3, r, r, generator=gen)
    cond_all = teacher.encode_prompts(prompts)
    uncond = teacher.encode_prompts([""])
    ts = ddim_timesteps(teacher.schedule, steps)
    a_bar = teacher.schedule.alphas_cumprod
    outs = []
    chunks = range(0, len(prompts), batch_size)
    if progress:
        from tqdm import tqdm

        chunks = tqdm(chunks, desc="sampling", unit="batch")
    for i in chunks:
        x = noise[i : i + batch_size]
        cond = cond_all[i : i + batch_size]
        for k, t in enumerate(ts.tolist()):
            tt = torch.full((x.shape[0],), t, dtype=torch.long)
            eps = guided_eps(teacher, x, tt, cond, uncond, cfg)
            ab = a_bar[t]
            x0 = ((x - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1.0, 1.0)
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
            ab_prev = a_bar[ts[k + 1]] if k + 1 < len(ts) else torch.tensor(1.0)
            x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
        outs.append(x)
    return teacher.decode(torch.cat(outs))


def save_grid(images: Tensor, path: str | Path, columns: int = 8, scale: int = 2, labels: Sequence[str] | None = None) -> Path:
    """Save images [B, 3, H, W] in [0, 1] as a PNG grid (nearest upscaling by ``scale``; optional
    row labels drawn on a strip to the left)."""
    from PIL import Image, ImageDraw

    from ui3d.io import atomic_path

    b, _, h, w = images.shape
    rows = (b + columns - 1) // columns
    tiles = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    label_w = 110 if labels else 0
    sheet = Image.new("RGB", (label_w + columns * w * scale, rows * h * scale), "white")
    draw = ImageDraw.Draw(sheet)
    for k in range(b):
        r, c = divmod(k, columns)
        tile = Image.fromarray(tiles[k]).resize((w * scale, h * scale), Image.NEAREST)
        sheet.paste(tile, (label_w + c * w * scale, r * h * scale))
    for r, text in enumerate(labels or []):
        draw.text((3, r * h * scale + h * scale // 2 - 6), str(text), fill=(0, 0, 0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return path


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
