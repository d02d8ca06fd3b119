"""The one writer of image grids: teacher and generator samples, validation and preview images,
the world's contact sheet."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from ui3d.io import atomic_path

__all__ = ["save_grid"]

LABEL_WIDTH = 110  # pixels of the strip left of the tiles that holds the row labels


def save_grid(images: Tensor, path: str | Path, columns: int = 8, scale: int = 2,
              labels: Sequence[str] | None = None) -> Path:
    """Save images [B, 3, H, W] in [0, 1] as a PNG grid, row by row on white (nearest upscaling
    by ``scale``; optional row labels drawn on a strip to the left). Written atomically."""
    from PIL import Image, ImageDraw

    b, _, h, w = images.shape
    rows = (b + columns - 1) // columns
    tiles = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    label_w = LABEL_WIDTH if labels else 0
    sheet = Image.new("RGB", (label_w + columns * w * scale, rows * h * scale), "white")
    draw = ImageDraw.Draw(sheet)
    for k in range(b):
        r, c = divmod(k, columns)
        tile = Image.fromarray(tiles[k]).resize((w * scale, h * scale), Image.NEAREST)
        sheet.paste(tile, (label_w + c * w * scale, r * h * scale))
    for r, text in enumerate(labels or []):
        draw.text((3, r * h * scale + h * scale // 2 - 6), str(text), fill=(0, 0, 0))
    path = Path(path)
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return path
