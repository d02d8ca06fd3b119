"""3D Gaussian splatting: projection (EWA) and a depth-sorted alpha-compositing rasteriser in pure
torch (forward and backward through autograd), with gsplat as an optional accelerator on CUDA.

Conventions follow gsplat's (and the 3DGS paper's): the 2D covariance is ``J W Sigma W^T J^T``
plus ``eps2d = 0.3`` px^2 on the diagonal, a Gaussian's alpha at pixel centre ``p`` is
``min(0.99, o * exp(-0.5 d^T conic d))`` with ``d = p - mean2d``, alphas below 1/255 are skipped,
Gaussians are composited front to back by camera depth, and a pixel stops taking Gaussians once its
transmittance is below 1e-4. ``radii`` (culling, statistics) are ``ceil(3 sqrt(lambda_max))`` pixels.
Pixel centres are at ``(col + 0.5, row + 0.5)`` (the camera convention of :mod:`ui3d.cameras`,
where the camera looks along its -z).

The torch rasteriser is sparse: each Gaussian is listed in the small tiles its footprint (the
pixel box where its alpha can reach 1/255, from its opacity and 2D covariance) touches, the lists
are ordered by tile and depth, and only the (pixel, Gaussian) pairs whose alpha reaches 1/255 are
kept, grouped by pixel, and composited with a segmented cumulative sum. The cost grows with the
pairs (a few dozen pixels per Gaussian at small resolutions), not with pixels x Gaussians, and the
image does not depend on the tile size.
"""

from __future__ import annotations

import math
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
    tile_size: int = 4  # pixels per tile side when listing Gaussians (the image does not depend on it)
    eps2d: float = 0.3
    near: float = 0.01
    max_chunk_elements: int = 1 << 23  # (pixel, Gaussian) candidate pairs enumerated at once
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
    bsz, h, w, n = len(cams), cams.height, cams.width, means.shape[0]
    proj = project_gaussians(means, scales, quats, cams, cfg)
    means2d = proj.means2d
    if means2d.requires_grad:
        means2d.retain_grad()
    # per (view, Gaussian), flattened over the batch: what alpha depends on, and what is composited
    opac = opacities[None].expand(bsz, n).reshape(-1, 1)
    shape = torch.cat([means2d.reshape(-1, 2), proj.conics.reshape(-1, 3), opac], -1)  # [B*N, 6]
    values = torch.cat(
        [
            colours[None].expand(bsz, n, 3).reshape(-1, 3),
            torch.ones_like(opac),  # -> alpha
            proj.distances.reshape(-1, 1),
            proj.normals.reshape(-1, 3),
        ],
        dim=-1,
    )  # [B*N, 8]
    pairs = _list_pairs(shape.detach(), proj.depths.detach(), proj.radii, h, w, cfg)
    img, weight_sum = _composite(shape, values, pairs, bsz * h * w, cfg.tile_size)
    img = img.reshape(bsz, h, w, 8)  # rgb, alpha, depth, normal
    alpha = img[..., 3:4]
    rgb = img[..., :3] + (1.0 - alpha) * background[:, None, None, :]
    depth = img[..., 4:5] / alpha.clamp_min(1e-6)
    covered = alpha > 1e-6
    normal = torch.where(covered, F.normalize(img[..., 5:8], dim=-1), torch.zeros_like(img[..., 5:8]))
    depth = torch.where(covered, depth, torch.zeros_like(depth))
    return RasterOutput(
        rgb=rgb, alpha=alpha, depth=depth, normal=normal, means2d=means2d, radii=proj.radii,
        weights=weight_sum.reshape(bsz, n),
    )


@dataclass
class _Pairs:
    """The (pixel, Gaussian) pairs to composite, grouped by pixel, front to back within a pixel. An
    entry is a Gaussian listed in a tile; pair i is pixel ``flat[i] % ts^2`` (row-major in the tile)
    of entry ``flat[i] // ts^2``."""

    entry_gid: Tensor  # [E] Gaussian (b * N + n)
    entry_origin: Tensor  # [E, 2] pixel position of the tile's corner
    flat: Tensor  # [P]
    gid: Tensor  # [P] Gaussian (b * N + n)
    pixel: Tensor  # [P] b * H * W + y * W + x
    first: Tensor  # [P] index of the first pair of the same pixel


def _footprints(shape: Tensor, h: int, w: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Pixel boxes ``[x0, x0 + nx) x [y0, y0 + ny)`` of the pixel centres where each Gaussian's alpha
    reaches 1/255: ``o exp(-q/2) >= 1/255`` inside the ellipse ``q <= t = 2 log(255 o)``, whose
    half-extents are ``sqrt(t Sigma_xx)`` and ``sqrt(t Sigma_yy)`` (Sigma = conic^-1). The small
    margin only adds pixels that the alpha test drops."""
    u, v, a, b, c, o = shape.unbind(-1)
    det = (a * c - b * b).clamp_min(1e-30)
    t = 2.0 * torch.log(o.clamp_min(1e-30) / ALPHA_MIN).clamp_min(0.0)
    ex = torch.sqrt(t * c / det) + 1e-3
    ey = torch.sqrt(t * a / det) + 1e-3
    x0 = torch.ceil(u - ex - 0.5).clamp(0, w)
    x1 = torch.floor(u + ex - 0.5).clamp(-1, w - 1)
    y0 = torch.ceil(v - ey - 0.5).clamp(0, h)
    y1 = torch.floor(v + ey - 0.5).clamp(-1, h - 1)
    return x0.long(), y0.long(), (x1 - x0 + 1).clamp_min(0).long(), (y1 - y0 + 1).clamp_min(0).long()


def _tile_entries(shape: Tensor, depths: Tensor, radii: Tensor, h: int, w: int, ts: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(Gaussian, tile, tile x, tile y) for every tile that a Gaussian's footprint touches, grouped by
    tile and front to back within a tile."""
    n = radii.shape[1]
    tw, th = -(-w // ts), -(-h // ts)
    order = torch.argsort(depths.reshape(-1), stable=True)
    x0, y0, nx, ny = _footprints(shape.index_select(0, order), h, w)
    hit = torch.nonzero((nx > 0) & (ny > 0) & (radii.reshape(-1).index_select(0, order) > 0)).squeeze(1)
    order, x0, y0, nx, ny = (t.index_select(0, hit) for t in (order, x0, y0, nx, ny))
    tx0, ty0 = torch.div(x0, ts, rounding_mode="floor"), torch.div(y0, ts, rounding_mode="floor")
    ntx = torch.div(x0 + nx - 1, ts, rounding_mode="floor") - tx0 + 1
    nty = torch.div(y0 + ny - 1, ts, rounding_mode="floor") - ty0 + 1
    counts = ntx * nty
    k = torch.repeat_interleave(torch.arange(order.numel(), device=order.device), counts)
    local = torch.arange(k.numel(), device=k.device) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    ntx_k = ntx.index_select(0, k)
    row = torch.div(local, ntx_k, rounding_mode="floor")
    tx, ty, gid = tx0.index_select(0, k) + local - row * ntx_k, ty0.index_select(0, k) + row, order.index_select(0, k)
    tile = (torch.div(gid, n, rounding_mode="floor") * th + ty) * tw + tx
    # a stable sort by tile keeps the depth order of the enumeration
    perm = torch.sort(tile.int(), stable=True).indices
    return tuple(t.index_select(0, perm) for t in (gid, tile, tx, ty))


def _tile_coefficients(shape: Tensor, gid: Tensor, origin: Tensor) -> Tensor:
    """Per entry, the exponent ``log o - 0.5 d^T conic d`` as a quadratic polynomial in the
    tile-local pixel position: coefficients [E, 6] of the monomials (1, x, y, x^2, xy, y^2) (local
    coordinates keep the terms small)."""
    u, v, a, b, c, o = shape.index_select(0, gid).unbind(-1)
    mx, my = u - origin[:, 0], v - origin[:, 1]
    const = torch.log(o) - 0.5 * (a * mx * mx + 2.0 * b * mx * my + c * my * my)
    return torch.stack([const, a * mx + b * my, b * mx + c * my, -0.5 * a, -b, -0.5 * c], dim=-1)


def _monomials(ts: int, like: Tensor) -> Tensor:
    """(1, x, y, x^2, xy, y^2) [6, ts^2] at the pixel centres of a tile, row-major."""
    y, x = torch.meshgrid(torch.arange(ts, device=like.device), torch.arange(ts, device=like.device), indexing="ij")
    x, y = x.reshape(-1).to(like.dtype) + 0.5, y.reshape(-1).to(like.dtype) + 0.5
    return torch.stack([torch.ones_like(x), x, y, x * x, x * y, y * y])


def _alpha(power: Tensor) -> Tensor:
    return torch.exp(power).clamp_max(ALPHA_MAX)


def _chunks(counts: Tensor, limit: int) -> list[tuple[int, int]]:
    """Consecutive ranges of ``counts`` summing to at most ``limit`` (or one entry each)."""
    ends = torch.cumsum(counts, 0)
    out, lo, done = [], 0, 0
    while lo < counts.numel():
        hi = max(lo + 1, int(torch.searchsorted(ends, done + limit, right=True)))
        out.append((lo, hi))
        done, lo = int(ends[hi - 1]), hi
    return out


@torch.no_grad()
def _list_pairs(shape: Tensor, depths: Tensor, radii: Tensor, h: int, w: int, cfg: RasterConfig) -> _Pairs:
    """Every (pixel, Gaussian) pair whose alpha reaches 1/255, grouped by pixel and front to back,
    cut where the pixel's transmittance has fallen below 1e-4 (early termination; what is cut adds
    less than 1e-4 to the pixel)."""
    bsz, n = radii.shape
    ts, tp = cfg.tile_size, cfg.tile_size * cfg.tile_size
    tw, th = -(-w // ts), -(-h // ts)
    dev = shape.device
    gid, tile, tx, ty = _tile_entries(shape, depths, radii, h, w, ts)
    origin = torch.stack([tx * ts, ty * ts], -1).to(shape.dtype)
    counts = torch.bincount(tile, minlength=bsz * tw * th)
    start = torch.cumsum(counts, 0) - counts
    entry_count = counts.index_select(0, tile)  # length of the entry's tile list
    entry_start = start.index_select(0, tile)
    slot = torch.arange(gid.numel(), device=dev) - entry_start  # rank in the tile's list
    qx = torch.arange(ts, device=dev).repeat(ts)  # pixel in tile, row-major
    qy = torch.arange(ts, device=dev).repeat_interleave(ts)
    q_offset = qy * w + qx  # pixel id offsets in a tile
    entry_pixel = torch.div(gid, n, rounding_mode="floor") * (h * w) + origin[:, 1].long() * w + origin[:, 0].long()
    pieces = []
    for t0, t1 in _chunks(counts * tp, cfg.max_chunk_elements):  # bounds the [entries, ts^2] temporaries
        e0, e1 = int(start[t0]), int(start[t1 - 1] + counts[t1 - 1])
        if e1 == e0:
            continue
        alpha = _alpha(_tile_coefficients(shape, gid[e0:e1], origin[e0:e1]) @ _monomials(ts, shape))  # [E', ts^2]
        keep = alpha >= ALPHA_MIN
        if w % ts or h % ts:  # tiles overhang the image
            keep &= (tx[e0:e1, None] * ts + qx < w) & (ty[e0:e1, None] * ts + qy < h)
        cand = torch.nonzero(keep.reshape(-1)).squeeze(1)  # e * tp + q
        e = torch.div(cand, tp, rounding_mode="floor")
        q = cand - e * tp
        # tile-major, pixel-major, depth-minor order without sorting: each candidate's place in that
        # layout of all tp * (e1 - e0) candidates, inverted
        e = e + e0
        dest = tp * (entry_start.index_select(0, e) - e0) + q * entry_count.index_select(0, e) + slot.index_select(0, e)
        inv = torch.full((tp * (e1 - e0),), -1, dtype=torch.long, device=dev).scatter_(0, dest, torch.arange(dest.numel(), device=dev))
        order = inv.index_select(0, torch.nonzero(inv >= 0).squeeze(1))
        cand, e, q = cand.index_select(0, order), e.index_select(0, order), q.index_select(0, order)
        pixel = entry_pixel.index_select(0, e) + q_offset.index_select(0, q)
        log_t = _exclusive_log_transmittance(alpha.reshape(-1).index_select(0, cand), _segment_first(pixel))
        alive = torch.nonzero(log_t > math.log(1e-4)).squeeze(1)
        pieces.append((e.index_select(0, alive) * tp + q.index_select(0, alive), e.index_select(0, alive), pixel.index_select(0, alive)))
    if not pieces:
        pieces = [(torch.zeros(0, dtype=torch.long, device=dev),) * 3]
    flat, e, pixel = (torch.cat(x) for x in zip(*pieces))
    return _Pairs(entry_gid=gid, entry_origin=origin, flat=flat, gid=gid.index_select(0, e), pixel=pixel, first=_segment_first(pixel))


def _segment_first(key: Tensor) -> Tensor:
    """For pairs grouped by ``key``: the index of the first pair of each pair's group."""
    new = torch.ones_like(key, dtype=torch.bool)
    new[1:] = key[1:] != key[:-1]
    return torch.nonzero(new).squeeze(1).index_select(0, torch.cumsum(new, 0) - 1)


def _exclusive_log_transmittance(alpha: Tensor, first: Tensor) -> Tensor:
    """``log prod (1 - alpha_j)`` over the pairs j before each pair in its pixel (pairs grouped by
    pixel, front to back): a segmented exclusive cumsum, as one global cumsum minus its value at
    each pixel's first pair (in float64: the global sum runs over all pixels and would lose float32's
    precision)."""
    la = torch.log1p(-alpha).double()  # alphas <= 0.99: finite
    excl = torch.cumsum(la, 0) - la
    return (excl - excl.index_select(0, first)).to(alpha.dtype)


def _composite(shape: Tensor, values: Tensor, pairs: _Pairs, num_pixels: int, ts: int) -> tuple[Tensor, Tensor]:
    """Front-to-back compositing (through autograd): per pixel ``sum_i alpha_i T_i values_i``
    [num_pixels, 8], and each Gaussian's summed weight (detached) [B*N]."""
    power = _tile_coefficients(shape, pairs.entry_gid, pairs.entry_origin) @ _monomials(ts, shape)  # [E, ts^2]
    alpha = _alpha(power.reshape(-1).index_select(0, pairs.flat))
    wgt = alpha * torch.exp(_exclusive_log_transmittance(alpha, pairs.first))
    img = _WeightedSplat.apply(wgt, values, pairs.gid, pairs.pixel, num_pixels)
    weight_sum = values.new_zeros(values.shape[0]).index_add(0, pairs.gid, wgt.detach())
    return img, weight_sum


class _WeightedSplat(torch.autograd.Function):
    """``img[pixel[i]] += wgt[i] * values[gid[i]]`` over the pairs i: [num_pixels, C].

    One node instead of autograd's gather, multiply and scatter, so no [pairs, C] temporaries are
    kept for the backward, and the backward works only on the channels whose image gradient is
    not all zero (an albedo render leaves depth and normals without a gradient: half the channels).
    """

    @staticmethod
    def forward(ctx, wgt: Tensor, values: Tensor, gid: Tensor, pixel: Tensor, num_pixels: int) -> Tensor:
        ctx.save_for_backward(wgt, values, gid, pixel)
        return values.new_zeros(num_pixels, values.shape[1]).index_add_(0, pixel, values.index_select(0, gid) * wgt[:, None])

    @staticmethod
    def backward(ctx, grad_img: Tensor):
        wgt, values, gid, pixel = ctx.saved_tensors
        live = torch.nonzero(grad_img.abs().amax(0) > 0).squeeze(1)
        grad_wgt = grad_values = None
        if live.numel() == 0:  # None: autograd's zero
            return None, None, None, None, None
        g = grad_img.index_select(1, live).index_select(0, pixel)  # [P, live]
        if ctx.needs_input_grad[0]:
            grad_wgt = (g * values.index_select(1, live).index_select(0, gid)).sum(-1)
        if ctx.needs_input_grad[1]:
            grad_values = torch.zeros_like(values)
            grad_values[:, live] = values.new_zeros(values.shape[0], live.numel()).index_add_(0, gid, g * wgt[:, None])
        return grad_wgt, grad_values, None, None, None


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
