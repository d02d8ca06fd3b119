"""3D Gaussian splatting: projection (EWA) and a tiled, depth-sorted alpha-compositing rasteriser
in pure torch (forward and backward through autograd), with gsplat as an optional accelerator on
CUDA.

Conventions follow gsplat's (and the 3DGS paper's): the 2D covariance is ``J W Sigma W^T J^T``
plus ``eps2d = 0.3`` px^2 on the diagonal, a Gaussian's alpha at pixel centre ``p`` is
``min(0.99, o * exp(-0.5 d^T conic d))`` with ``d = p - mean2d``, alphas below 1/255 are skipped,
and Gaussians are composited front to back by camera depth. A Gaussian reaches ``3 sqrt(lambda_max)``
pixels from its centre. Pixel centres are at ``(col + 0.5, row + 0.5)`` (the camera convention of
:mod:`ui3d.cameras`, where the camera looks along its -z).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ui3d.cameras import Cameras, focal_length_px

__all__ = [
    "RasterConfig",
    "Projection",
    "RasterOutput",
    "quat_to_rotmat",
    "project_gaussians",
    "rasterize_gaussians",
    "gsplat_available",
]

ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.99


@dataclass(frozen=True)
class RasterConfig:
    tile_size: int = 16
    eps2d: float = 0.3
    near: float = 0.01
    max_chunk_elements: int = 1 << 23  # tiles x pixels x Gaussians per chunk
    backend: str = "auto"  # auto | torch | gsplat


@dataclass
class Projection:
    means2d: Tensor  # [B, N, 2] pixels
    conics: Tensor  # [B, N, 3] (a, b, c) of the inverse 2D covariance [[a, b], [b, c]]
    depths: Tensor  # [B, N] camera-axis depth (sorting)
    distances: Tensor  # [B, N] Euclidean distance to the camera centre (RenderOutput.depth)
    radii: Tensor  # [B, N] pixels; 0 = culled
    normals: Tensor  # [B, N, 3] world normals (shortest axis, towards the camera)


@dataclass
class RasterOutput:
    rgb: Tensor  # [B, H, W, 3] over the background
    alpha: Tensor  # [B, H, W, 1]
    depth: Tensor  # [B, H, W, 1]
    normal: Tensor  # [B, H, W, 3]
    means2d: Tensor  # [B, N, 2] (retain_grad() on it for densification statistics)
    radii: Tensor  # [B, N]
    weights: Tensor  # [B, N] sum of each Gaussian's compositing weights over the image


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Rotation matrices [N, 3, 3] of quaternions (w, x, y, z) [N, 4] (normalised here)."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(-1, 3, 3)


def project_gaussians(means: Tensor, scales: Tensor, quats: Tensor, cams: Cameras, cfg: RasterConfig = RasterConfig()) -> Projection:
    """EWA projection of Gaussians (means [N, 3], scales [N, 3] (not log), quats [N, 4])."""
    rot = quat_to_rotmat(quats)  # [N, 3, 3]
    cov = rot @ torch.diag_embed(scales * scales) @ rot.transpose(1, 2)  # [N, 3, 3]
    w2c = cams.c2w[:, :3, :3].transpose(1, 2)  # [B, 3, 3]
    cam_pos = cams.c2w[:, :3, 3]
    rel = means[None] - cam_pos[:, None]  # [B, N, 3]
    p = torch.einsum("bij,bnj->bni", w2c, rel)
    z = -p[..., 2]
    zs = z.clamp_min(cfg.near)
    f = focal_length_px(cams)[:, None]
    u = p[..., 0] / zs * f + 0.5 * cams.width
    v = -p[..., 1] / zs * f + 0.5 * cams.height
    zero = torch.zeros_like(zs)
    j = torch.stack(
        [f / zs, zero, f * p[..., 0] / (zs * zs), zero, -f / zs, -f * p[..., 1] / (zs * zs)], dim=-1
    ).reshape(*zs.shape, 2, 3)
    m = j @ w2c[:, None]  # [B, N, 2, 3]
    cov2 = m @ cov[None] @ m.transpose(-1, -2)  # [B, N, 2, 2]
    a = cov2[..., 0, 0] + cfg.eps2d
    b = cov2[..., 0, 1]
    c = cov2[..., 1, 1] + cfg.eps2d
    det = (a * c - b * b).clamp_min(1e-12)
    conics = torch.stack([c / det, -b / det, a / det], dim=-1)
    mid = 0.5 * (a + c)
    lam = mid + (mid * mid - det).clamp_min(0.1).sqrt()
    radii = torch.ceil(3.0 * lam.sqrt()).detach()
    on_screen = (
        (z > cfg.near)
        & (u + radii > 0) & (u - radii < cams.width)
        & (v + radii > 0) & (v - radii < cams.height)
    )
    radii = torch.where(on_screen, radii, torch.zeros_like(radii))
    # normal: the axis of the smallest scale, flipped to face the camera
    axis = torch.gather(rot, 2, scales.argmin(-1)[:, None, None].expand(-1, 3, 1)).squeeze(-1)  # [N, 3]
    facing = torch.sign((axis[None] * -rel).sum(-1, keepdim=True))
    normals = axis[None] * torch.where(facing == 0, torch.ones_like(facing), facing)
    return Projection(
        means2d=torch.stack([u, v], -1), conics=conics, depths=z, distances=rel.norm(dim=-1), radii=radii, normals=normals
    )


def _tile_pairs(proj: Projection, h: int, w: int, tile: int) -> tuple[Tensor, Tensor, int, int]:
    """(global tile id, global Gaussian id) pairs sorted by tile then depth."""
    bsz, n = proj.radii.shape
    tx, ty = (w + tile - 1) // tile, (h + tile - 1) // tile
    u, v = proj.means2d.detach().unbind(-1)
    r = proj.radii
    x0 = ((u - r) / tile).floor().clamp(0, tx - 1).long()
    x1 = ((u + r) / tile).floor().clamp(0, tx - 1).long()
    y0 = ((v - r) / tile).floor().clamp(0, ty - 1).long()
    y1 = ((v + r) / tile).floor().clamp(0, ty - 1).long()
    valid = r > 0
    nx = torch.where(valid, x1 - x0 + 1, torch.zeros_like(x0)).reshape(-1)
    ny = torch.where(valid, y1 - y0 + 1, torch.zeros_like(y0)).reshape(-1)
    counts = nx * ny
    gid = torch.repeat_interleave(torch.arange(bsz * n, device=r.device), counts)
    start = torch.cumsum(counts, 0) - counts
    local = torch.arange(int(counts.sum()), device=r.device) - torch.repeat_interleave(start, counts)
    gx = x0.reshape(-1)[gid] + local % nx[gid]
    gy = y0.reshape(-1)[gid] + torch.div(local, nx[gid], rounding_mode="floor")
    cam = torch.div(gid, n, rounding_mode="floor")
    tile_id = cam * (tx * ty) + gy * tx + gx
    depth = proj.depths.detach().reshape(-1)[gid]
    order = torch.argsort(depth, stable=True)
    order = order[torch.argsort(tile_id[order], stable=True)]
    return tile_id[order], gid[order], tx, ty


def rasterize_gaussians(
    means: Tensor,
    scales: Tensor,
    quats: Tensor,
    opacities: Tensor,
    colours: Tensor,
    cams: Cameras,
    background: Tensor,
    cfg: RasterConfig = RasterConfig(),
) -> RasterOutput:
    """Render Gaussians (opacities [N] in (0, 1), colours [N, 3]) over ``background`` [B, 3]."""
    backend = cfg.backend
    if backend == "gsplat" or (backend == "auto" and means.is_cuda and gsplat_available()):
        return _rasterize_gsplat(means, scales, quats, opacities, colours, cams, background)
    return _rasterize_torch(means, scales, quats, opacities, colours, cams, background, cfg)


def _rasterize_torch(means, scales, quats, opacities, colours, cams, background, cfg) -> RasterOutput:
    bsz, h, w, n, ts = len(cams), cams.height, cams.width, means.shape[0], cfg.tile_size
    proj = project_gaussians(means, scales, quats, cams, cfg)
    means2d = proj.means2d
    if means2d.requires_grad:
        means2d.retain_grad()
    tile_id, gid, tx, ty = _tile_pairs(proj, h, w, ts)
    n_tiles = bsz * tx * ty
    counts = torch.bincount(tile_id, minlength=n_tiles)
    k = int(counts.max()) if counts.numel() and tile_id.numel() else 0
    # per-Gaussian attributes flattened over the batch
    feats = torch.cat(
        [
            means2d.reshape(-1, 2),
            proj.conics.reshape(-1, 3),
            opacities[None].expand(bsz, n).reshape(-1, 1),
            colours[None].expand(bsz, n, 3).reshape(-1, 3),
            proj.distances.reshape(-1, 1),
            proj.normals.reshape(-1, 3),
        ],
        dim=-1,
    )  # [B*N, 13]
    # pixel centres of each tile
    py, px = torch.meshgrid(torch.arange(ts, device=means.device), torch.arange(ts, device=means.device), indexing="ij")
    pix = torch.stack([px.reshape(-1), py.reshape(-1)], -1).to(means.dtype) + 0.5  # [P, 2]
    p_count = ts * ts
    acc = means.new_zeros(n_tiles, p_count, 8)  # rgb, alpha, depth, normal
    weight_sum = means.new_zeros(bsz * n)
    if k > 0:
        start = torch.cumsum(counts, 0) - counts
        slot = torch.arange(tile_id.numel(), device=means.device) - start[tile_id]
        table = torch.full((n_tiles, k), -1, dtype=torch.long, device=means.device)
        table[tile_id, slot] = gid
        table = _truncate_saturated(feats.detach(), table, tx, ty, ts, pix, cfg)
        # tiles with similar list lengths share a chunk, padded only to that chunk's longest list;
        # empty tiles are skipped
        lengths = (table >= 0).sum(1)
        order = torch.argsort(lengths, descending=True)
        order = order[lengths[order] > 0]
        pieces, done = [], 0
        while done < order.numel():
            k_chunk = int(lengths[order[done]])
            chunk = max(1, cfg.max_chunk_elements // (p_count * k_chunk))
            tiles = order[done : done + chunk]
            o, (idx, wsum) = _composite_tiles(feats, table[tiles, :k_chunk], tiles, tx, ty, ts, pix)
            pieces.append((tiles, o))
            weight_sum = weight_sum.index_add(0, idx, wsum)
            done += chunk
        if pieces:
            acc = acc.index_put((torch.cat([t for t, _ in pieces]),), torch.cat([o for _, o in pieces]))
    # tiles -> images
    img = acc.reshape(bsz, ty, tx, ts, ts, 8).permute(0, 1, 3, 2, 4, 5).reshape(bsz, ty * ts, tx * ts, 8)[:, :h, :w]
    alpha = img[..., 3:4]
    rgb = img[..., :3] + (1.0 - alpha) * background[:, None, None, :]
    depth = img[..., 4:5] / alpha.clamp_min(1e-6)
    covered = alpha > 1e-6
    normal = torch.where(covered, F.normalize(img[..., 5:8], dim=-1), torch.zeros_like(img[..., 5:8]))
    depth = torch.where(covered, depth, torch.zeros_like(depth))
    return RasterOutput(
        rgb=rgb, alpha=alpha, depth=depth, normal=normal, means2d=means2d, radii=proj.radii,
        weights=weight_sum.reshape(bsz, n).detach(),
    )


@torch.no_grad()
def _truncate_saturated(feats: Tensor, table: Tensor, tx: int, ty: int, ts: int, pix: Tensor, cfg: RasterConfig) -> Tensor:
    """Early termination, batched: drop the tail of each tile's list once every pixel of the tile
    has transmittance below 1e-4 (those Gaussians add nothing, as in the CUDA rasterisers)."""
    n_tiles, k = table.shape
    chunk = max(1, cfg.max_chunk_elements // (ts * ts * k))
    needed = torch.zeros(n_tiles, dtype=torch.long, device=table.device)
    for t0 in range(0, n_tiles, chunk):
        tiles = torch.arange(t0, min(n_tiles, t0 + chunk), device=table.device)
        trans = _transmittance(feats, table[tiles], tiles, tx, ty, ts, pix)  # [C, P, K] before each
        alive = (trans > 1e-4).any(1)  # [C, K]
        idx = torch.arange(k, device=table.device)
        needed[tiles] = torch.where(alive, idx + 1, torch.zeros_like(idx)).amax(-1)
    k_new = max(int(needed.max()), 1)
    table = table[:, :k_new].clone()
    table[torch.arange(k_new, device=table.device)[None, :] >= needed[:, None]] = -1
    return table


def _alphas(feats: Tensor, table: Tensor, tiles: Tensor, tx: int, ty: int, ts: int, pix: Tensor) -> tuple[Tensor, Tensor]:
    """Alphas [C, P, K] of the listed Gaussians at the pixels of tiles ``tiles`` [C].

    The exponent ``-0.5 d^T conic d + log o`` is a quadratic polynomial in the pixel position, so it
    is one batched matrix product of per-pixel monomials [P, 6] and per-Gaussian coefficients
    [C, 6, K] (tile-local coordinates keep the terms small)."""
    valid = table >= 0
    g = feats[table.clamp_min(0)]  # [C, K, 13]
    local = tiles % (tx * ty)
    origin = torch.stack([(local % tx) * ts, torch.div(local, tx, rounding_mode="floor") * ts], -1).to(pix)  # [C, 2]
    mx = g[..., 0] - origin[:, None, 0]
    my = g[..., 1] - origin[:, None, 1]
    a, b, c = g[..., 2], g[..., 3], g[..., 4]
    log_o = torch.log(g[..., 5].clamp_min(1e-12))
    const = -0.5 * (a * mx * mx + 2 * b * mx * my + c * my * my) + log_o
    const = torch.where(valid, const, torch.full_like(const, -1e4))  # padding: alpha 0
    coef = torch.stack([const, a * mx + b * my, b * mx + c * my, -0.5 * a, -b, -0.5 * c], dim=1)  # [C, 6, K]
    px, py = pix[:, 0], pix[:, 1]
    mono = torch.stack([torch.ones_like(px), px, py, px * px, px * py, py * py], -1)  # [P, 6]
    power = torch.matmul(mono, coef)  # [C, P, K]
    alpha = torch.exp(power.clamp_max(0.0)).clamp_max(ALPHA_MAX)
    alpha = torch.where(alpha >= ALPHA_MIN, alpha, torch.zeros_like(alpha))
    return alpha, g


def _exclusive_transmittance(alpha: Tensor) -> Tensor:
    """T_k = prod_{j<k} (1 - alpha_j) along the last axis (alphas <= 0.99, so the log is finite)."""
    acc = torch.cumsum(torch.log1p(-alpha), dim=-1)
    return torch.exp(torch.cat([torch.zeros_like(acc[..., :1]), acc[..., :-1]], -1))


def _transmittance(feats, table, tiles, tx, ty, ts, pix) -> Tensor:
    alpha, _ = _alphas(feats, table, tiles, tx, ty, ts, pix)
    return _exclusive_transmittance(alpha)


def _composite_tiles(feats: Tensor, table: Tensor, tiles: Tensor, tx: int, ty: int, ts: int, pix: Tensor):
    """Front-to-back compositing of the sorted lists ``table`` [C, K] (-1 = padding) of tiles."""
    valid = table >= 0
    alpha, g = _alphas(feats, table, tiles, tx, ty, ts, pix)
    wgt = alpha * _exclusive_transmittance(alpha)  # [C, P, K]
    vals = torch.cat([g[..., 6:9], torch.ones_like(g[..., :1]), g[..., 9:13]], -1)  # [C, K, 8]
    out = torch.einsum("cpk,ckf->cpf", wgt, vals)
    per_gauss = wgt.detach().sum(1)  # [C, K]
    return out, (table.clamp_min(0)[valid], per_gauss[valid])


def gsplat_available() -> bool:
    try:
        import gsplat  # noqa: F401
    except Exception:
        return False
    return torch.cuda.is_available()


def _rasterize_gsplat(means, scales, quats, opacities, colours, cams, background) -> RasterOutput:
    """gsplat (CUDA) with our camera convention converted to its OpenCV one; normals ride along as
    three extra colour channels, and gsplat's axis depth is converted to distance along the ray."""
    import gsplat

    from ui3d.cameras import camera_rays

    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], device=means.device, dtype=means.dtype))
    viewmats = flip[None] @ torch.linalg.inv(cams.c2w)  # world -> OpenCV camera
    f = focal_length_px(cams)
    ks = torch.zeros(len(cams), 3, 3, device=means.device, dtype=means.dtype)
    ks[:, 0, 0], ks[:, 1, 1] = f, f
    ks[:, 0, 2], ks[:, 1, 2], ks[:, 2, 2] = 0.5 * cams.width, 0.5 * cams.height, 1.0
    proj = project_gaussians(means, scales, quats, cams)
    bsz, n = len(cams), means.shape[0]
    feats = torch.cat([colours[None].expand(bsz, n, 3), proj.normals], -1)  # [B, N, 6]
    out, alpha, meta = gsplat.rasterization(
        means, F.normalize(quats, dim=-1), scales, opacities, feats, viewmats, ks, cams.width, cams.height,
        render_mode="RGB+ED", eps2d=RasterConfig.eps2d,
    )
    rgb = out[..., :3] + (1.0 - alpha) * background[:, None, None, :]
    _, dirs = camera_rays(cams)
    forward = -cams.c2w[:, None, None, :3, 2]
    cos = (dirs * forward).sum(-1, keepdim=True).clamp_min(1e-6)
    depth = out[..., 6:7] / cos
    covered = alpha > 1e-6
    normal = torch.where(covered, F.normalize(out[..., 3:6], dim=-1), torch.zeros_like(out[..., 3:6]))
    means2d = meta["means2d"]
    if means2d.requires_grad:
        means2d.retain_grad()
    return RasterOutput(
        rgb=rgb, alpha=alpha, depth=torch.where(covered, depth, torch.zeros_like(depth)), normal=normal,
        means2d=means2d, radii=meta["radii"], weights=torch.zeros(bsz, n, device=means.device),
    )
