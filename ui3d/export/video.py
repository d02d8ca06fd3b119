"""Turntable video of a scene: orbit cameras around the object, rendered by the scene itself,
written with imageio as .mp4 (imageio-ffmpeg) or, where that is unavailable, as .gif.

A CPU renders a 256² frame about 4x (NeRF) to 7x (Gaussians) slower than a 128² one, so frames are
rendered at ``render_size`` and upscaled (bicubic) to the video's ``size``: 3 s at 24 fps and 256²
for the cost of 128² renders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ui3d.cameras import orbit_cameras
from ui3d.io import atomic_path

__all__ = ["turntable_frames", "write_video", "TURNTABLE_FPS"]

TURNTABLE_FPS = 24


@torch.no_grad()
def turntable_frames(scene, frames: int = 3 * TURNTABLE_FPS, size: int = 256, elevation_deg: float = 15.0,
                     distance: float = 1.8, shading: str = "albedo", batch: int = 4,
                     render_size: int = 128) -> np.ndarray:
    """uint8 frames [N, size, size, 3] on a white background, one full turn; the scene renders at
    ``min(render_size, size)`` pixels per side."""
    rendered = min(render_size, size)
    cams = orbit_cameras(frames, rendered, elevation_deg=elevation_deg, distance=distance)
    dev = scene.device
    out = []
    for i in range(0, frames, batch):
        c = cams[i : i + batch].to(dev)
        rgb = scene.render(c, shading=shading, background=torch.ones(3, device=dev), normals=False).rgb
        out.append(_upscale(rgb, size).cpu())
    rgb = torch.cat(out).clamp(0, 1).numpy()
    return (rgb * 255).round().astype(np.uint8)


def _upscale(rgb: torch.Tensor, size: int) -> torch.Tensor:
    """[B, h, w, 3] -> [B, size, size, 3] (bicubic; unchanged when already that size)."""
    if rgb.shape[1] == size:
        return rgb
    chw = rgb.permute(0, 3, 1, 2)
    return torch.nn.functional.interpolate(chw, size=(size, size), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)


def write_video(frames: np.ndarray, path: str | Path, fps: int = TURNTABLE_FPS) -> Path:
    """Write frames as .mp4; if ffmpeg is unavailable, as a .gif beside it. Returns the path written."""
    import imageio.v2 as imageio

    path = Path(path)
    if path.suffix.lower() == ".mp4":
        try:
            with atomic_path(path) as tmp:
                imageio.mimwrite(tmp, list(frames), fps=fps, codec="libx264", quality=8, macro_block_size=1)
            return path
        except Exception:  # no ffmpeg backend: fall back to a GIF
            path = path.with_suffix(".gif")
    with atomic_path(path) as tmp:
        imageio.mimwrite(tmp, list(frames), duration=1000.0 / fps, loop=0)
    return path
