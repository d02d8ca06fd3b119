"""A small z-buffer triangle rasteriser for looking at exported meshes (no OpenGL): vertex colours
interpolated, lit by ambient + Lambert from the camera's light, same camera convention as every
other renderer.

The z-buffer picks each pixel's nearest fragment with a min-reduction (:func:`nearest_fragments`),
not by writing fragments far-to-near into the image: torch does not define which of several writes
to one index wins, and with two threads such an image came out wrong at nearly every pixel."""

from __future__ import annotations

import numpy as np
import torch

from ui3d.cameras import Cameras, project_points

__all__ = ["render_mesh", "nearest_fragments"]


@torch.no_grad()
def render_mesh(vertices: np.ndarray, faces: np.ndarray, colours: np.ndarray, cams: Cameras,
                background: float = 1.0, ambient: float = 0.35, diffuse: float = 0.75) -> np.ndarray:
    """Images [B, H, W, 3] (float in [0, 1]) of a vertex-coloured mesh."""
    v = torch.as_tensor(np.asarray(vertices), dtype=torch.float32)
    f = torch.as_tensor(np.asarray(faces), dtype=torch.long)
    col = torch.as_tensor(np.asarray(colours)[:, :3], dtype=torch.float32)
    if col.max() > 1.0:
        col = col / 255.0
    h, w = cams.height, cams.width
    fn = torch.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]], dim=-1)
    fn = fn / fn.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    out = np.full((len(cams), h, w, 3), background, dtype=np.float32)
    for b in range(len(cams)):
        uv, z = project_points(cams[b], v[None])
        uv, z = uv[0], z[0]
        tri, tz = uv[f], z[f]  # [F, 3, 2], [F, 3]
        ok = (tz > 1e-3).all(-1)
        lo = tri.amin(1).floor().clamp(0, max(h, w)).long()
        hi = tri.amax(1).ceil().long()
        x0, y0 = lo[:, 0].clamp(0, w - 1), lo[:, 1].clamp(0, h - 1)
        x1, y1 = hi[:, 0].clamp(-1, w - 1), hi[:, 1].clamp(-1, h - 1)
        nx, ny = (x1 - x0 + 1).clamp_min(0), (y1 - y0 + 1).clamp_min(0)
        cnt = torch.where(ok, nx * ny, torch.zeros_like(nx))
        fid = torch.repeat_interleave(torch.arange(len(f)), cnt)
        start = torch.cumsum(cnt, 0) - cnt
        local = torch.arange(int(cnt.sum())) - torch.repeat_interleave(start, cnt)
        px = x0[fid] + local % nx[fid]
        py = y0[fid] + torch.div(local, nx[fid], rounding_mode="floor")
        p = torch.stack([px, py], -1).float() + 0.5
        a, bb, c = tri[fid, 0], tri[fid, 1], tri[fid, 2]
        det = (bb[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (bb[:, 1] - a[:, 1])
        det = torch.where(det.abs() < 1e-12, torch.full_like(det, 1e-12), det)
        l1 = ((p[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (p[:, 1] - a[:, 1])) / det
        l2 = ((bb[:, 0] - a[:, 0]) * (p[:, 1] - a[:, 1]) - (p[:, 0] - a[:, 0]) * (bb[:, 1] - a[:, 1])) / det
        l0 = 1 - l1 - l2
        inside = (l0 >= 0) & (l1 >= 0) & (l2 >= 0)
        fid, px, py, l0, l1, l2 = fid[inside], px[inside], py[inside], l0[inside], l1[inside], l2[inside]
        depth = l0 * tz[fid, 0] + l1 * tz[fid, 1] + l2 * tz[fid, 2]
        pix = py * w + px
        keep = nearest_fragments(pix, depth, h * w)
        pix, fid, l0, l1, l2 = pix[keep], fid[keep], l0[keep], l1[keep], l2[keep]
        rgb = l0[:, None] * col[f[fid, 0]] + l1[:, None] * col[f[fid, 1]] + l2[:, None] * col[f[fid, 2]]
        pos = l0[:, None] * v[f[fid, 0]] + l1[:, None] * v[f[fid, 1]] + l2[:, None] * v[f[fid, 2]]
        to_light = cams.light_pos[b] - pos
        to_light = to_light / to_light.norm(dim=-1, keepdim=True)
        lam = (fn[fid] * to_light).sum(-1).abs()
        shaded = (rgb * (ambient + diffuse * lam[:, None])).clamp(0, 1)
        img = torch.full((h * w, 3), float(background))
        img[pix] = shaded  # one fragment per pixel: no write order to depend on
        out[b] = img.reshape(h, w, 3).numpy()
    return out


def nearest_fragments(pixel: torch.Tensor, depth: torch.Tensor, num_pixels: int) -> torch.Tensor:
    """Indices of the fragments that a z-buffer keeps: per pixel the one of least depth, ties to
    the lowest fragment index; at most one per pixel. Min-reductions give the same result in any
    order, so this is deterministic on any number of threads."""
    nearest = torch.full((num_pixels,), float("inf"), dtype=depth.dtype).scatter_reduce(0, pixel, depth, "amin")
    candidates = torch.nonzero(depth == nearest[pixel]).squeeze(-1)
    none = len(depth)
    first = torch.full((num_pixels,), none, dtype=torch.long).scatter_reduce(0, pixel[candidates], candidates, "amin")
    return first[first < none]
