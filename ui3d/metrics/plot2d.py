"""PNG of 2-D samples over a density, drawn with PIL only (no plotting library).

The density is shown as a light background (white = no mass, slate blue = the peak, on a
square-root scale so low-weight modes stay visible); samples are small orange-red dots. The y
axis points up; both axes share one scale so circles stay circles.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from ui3d.io import atomic_path

__all__ = ["DOT_COLOR", "density_scatter_png", "pixel_of"]

DOT_COLOR = (230, 60, 20)
_BORDER_COLOR = (60, 60, 60)
_LOW = torch.tensor([255.0, 255.0, 255.0], dtype=torch.float64)
_HIGH = torch.tensor([70.0, 90.0, 140.0], dtype=torch.float64)
_EVAL_CHUNK = 65536  # grid points per log_density call


def _default_extent(pts: Tensor) -> tuple[float, float, float, float]:
    """Square box around the finite samples with a 15% margin (at least 0.5 on each side)."""
    if pts.shape[0] == 0:
        return (-1.0, 1.0, -1.0, 1.0)
    lo, hi = pts.min(dim=0).values, pts.max(dim=0).values
    center = (lo + hi) / 2
    half = float((hi - lo).max()) / 2
    half = half * 1.15 + 0.5
    cx, cy = float(center[0]), float(center[1])
    return (cx - half, cx + half, cy - half, cy + half)


def _check_extent(extent: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    if len(extent) != 4:
        raise ValueError(f"extent: expected (xmin, xmax, ymin, ymax), got {extent!r}")
    xmin, xmax, ymin, ymax = (float(v) for v in extent)
    if not all(math.isfinite(v) for v in (xmin, xmax, ymin, ymax)) or xmin >= xmax or ymin >= ymax:
        raise ValueError(f"extent: expected finite (xmin, xmax, ymin, ymax) with xmin < xmax and ymin < ymax, got {extent!r}")
    return xmin, xmax, ymin, ymax


def pixel_of(xy: Tensor, extent: tuple[float, float, float, float], size: int) -> Tensor:
    """Integer pixel (column, row) of points xy [n, 2]; row 0 is the top (largest y)."""
    xmin, xmax, ymin, ymax = extent
    col = (xy[:, 0].double() - xmin) / (xmax - xmin) * (size - 1)
    row = (ymax - xy[:, 1].double()) / (ymax - ymin) * (size - 1)
    return torch.stack([col, row], dim=1).round().long()


def _background(
    log_density: Callable[[Tensor], Tensor],
    extent: tuple[float, float, float, float],
    size: int,
    dtype: torch.dtype,
    device: torch.device,
) -> Image.Image:
    xmin, xmax, ymin, ymax = extent
    xs = torch.linspace(xmin, xmax, size, dtype=torch.float64)
    ys = torch.linspace(ymax, ymin, size, dtype=torch.float64)  # top row = largest y
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)
    parts = []
    with torch.no_grad():
        for start in range(0, grid.shape[0], _EVAL_CHUNK):
            chunk = grid[start : start + _EVAL_CHUNK].to(dtype=dtype, device=device)
            out = log_density(chunk)
            if not isinstance(out, Tensor) or out.shape != (chunk.shape[0],):
                got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise ValueError(f"log_density: expected a tensor of shape [{chunk.shape[0]}], got {got}")
            parts.append(out.detach().to(device="cpu", dtype=torch.float64))
    logp = torch.cat(parts)
    if torch.isnan(logp).any() or (logp == float("inf")).any():
        raise ValueError("log_density: returned NaN or +inf on the plotting grid")
    peak = logp.max()
    if peak == float("-inf"):
        level = torch.zeros_like(logp)
    else:
        level = torch.exp(0.5 * (logp - peak))  # sqrt of the density relative to its peak
    rgb = _LOW + level[:, None] * (_HIGH - _LOW)
    arr = rgb.round().clamp(0, 255).to(torch.uint8).reshape(size, size, 3)
    return Image.fromarray(arr.numpy())


def density_scatter_png(
    path: str | os.PathLike,
    samples: Tensor,
    log_density: Callable[[Tensor], Tensor],
    *,
    extent: tuple[float, float, float, float] | None = None,
    size: int = 512,
    max_points: int = 5000,
    title: str | None = None,
) -> None:
    """Write a size x size PNG: log_density on a grid as the background, samples as dots.

    extent is (xmin, xmax, ymin, ymax); by default a square box around the finite samples with
    a margin. At most `max_points` evenly spaced samples are drawn (deterministic); non-finite
    samples cannot be placed and are skipped. log_density receives [m, 2] points in the dtype
    and on the device of `samples`. The file is replaced atomically.
    """
    if not isinstance(samples, Tensor) or samples.ndim != 2 or samples.shape[1] != 2:
        got = tuple(samples.shape) if isinstance(samples, Tensor) else type(samples).__name__
        raise ValueError(f"samples: expected a tensor of shape [n, 2], got {got}")
    if not isinstance(size, int) or size < 16:
        raise ValueError(f"size: expected an int >= 16, got {size!r}")
    if not isinstance(max_points, int) or max_points < 1:
        raise ValueError(f"max_points: expected a positive int, got {max_points!r}")
    dtype = samples.dtype if samples.is_floating_point() else torch.float32
    device = samples.device
    pts = samples.detach().to(device="cpu", dtype=torch.float64)
    pts = pts[torch.isfinite(pts).all(dim=1)]
    extent = _default_extent(pts) if extent is None else _check_extent(extent)

    img = _background(log_density, extent, size, dtype, device)
    draw = ImageDraw.Draw(img)
    if pts.shape[0] > max_points:
        idx = torch.linspace(0, pts.shape[0] - 1, max_points).round().long()
        pts = pts[idx]
    r = 1 if size <= 768 else 2  # 3 px dots, 5 px on large images
    for col, row in pixel_of(pts, extent, size).tolist():
        if -r <= col < size + r and -r <= row < size + r:
            draw.rectangle([col - r, row - r, col + r, row + r], fill=DOT_COLOR)
    if title:
        font = ImageFont.load_default()
        left, top, right, bottom = draw.textbbox((6, 4), title, font=font)
        draw.rectangle([left - 3, top - 2, right + 3, bottom + 2], fill=(255, 255, 255))
        draw.text((6, 4), title, fill=(20, 20, 20), font=font)
    draw.rectangle([0, 0, size - 1, size - 1], outline=_BORDER_COLOR, width=1)

    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
