"""Tiny, randomly initialised Stable Diffusion parts of the real diffusers/transformers classes.

No weights can be downloaded on our machines, so the Stable Diffusion code is tested with these:
the same classes (UNet2DConditionModel, AutoencoderKL, CLIPTextModel, CLIPTokenizer) and the same
folder layout as a hub checkpoint, small enough to run a forward pass in a fraction of a second.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch

TINY_TEXT_DIM = 32


def tiny_vocabulary() -> tuple[dict[str, int], list[str]]:
    """A character-level CLIP BPE vocabulary: specials, letters, letters ending a word, a few merges."""
    tokens = ["<|startoftext|>", "<|endoftext|>"]
    tokens += list(string.ascii_lowercase) + [c + "</w>" for c in string.ascii_lowercase]
    tokens += list(",.") + [c + "</w>" for c in ",."]
    merges = ["a n</w>", "t h", "th e</w>"]
    tokens += ["an</w>", "th", "the</w>"]
    return {tok: i for i, tok in enumerate(tokens)}, merges


def save_tiny_stable_diffusion(folder: str | Path, seed: int = 0, prediction_type: str = "epsilon") -> Path:
    """Write a complete tiny SD checkpoint folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TINY_TEXT_DIM, attention_head_dim=8, norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1, norm_num_groups=8, sample_size=64,
    )
    vocab, merges = tiny_vocabulary()
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=TINY_TEXT_DIM, intermediate_size=64, num_attention_heads=4,
        num_hidden_layers=2, max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    ))
    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                              prediction_type=prediction_type)
    for name, part in (("unet", unet), ("vae", vae), ("text_encoder", text_encoder), ("scheduler", scheduler)):
        part.save_pretrained(folder / name)
    tok_dir = folder / "tokenizer"
    tok_dir.mkdir(parents=True, exist_ok=True)
    (tok_dir / "vocab.json").write_text(json.dumps(vocab))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (tok_dir / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 77, "tokenizer_class": "CLIPTokenizer"}))
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    return folder
