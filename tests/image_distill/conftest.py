"""Tiny offline fixtures: a randomly initialised diffusers UNet2DModel checkpoint folder (DDPM
layout: config.json, weights and scheduler_config.json at the root) and folders of PNGs."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


def save_tiny_unet2d(folder: Path, channels: int = 3, size: int = 8, widths=(16, 32), seed: int = 0) -> Path:
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(seed)
    unet = UNet2DModel(sample_size=size, in_channels=channels, out_channels=channels, layers_per_block=1,
                       block_out_channels=widths, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=8, attention_head_dim=8)
    unet.save_pretrained(folder)
    DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear").save_pretrained(folder)
    return folder


def save_pngs(folder: Path, n: int = 6, size: int = 8, mode: str = "RGB", seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        shape = (size, size, 3) if mode == "RGB" else (size, size)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(folder / f"img{i}.png")
    return folder


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory) -> Path:
    return save_tiny_unet2d(tmp_path_factory.mktemp("unet2d"))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    return save_pngs(tmp_path_factory.mktemp("data"))
