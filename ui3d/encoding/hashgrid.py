"""Multiresolution hash encoding (Instant-NGP) in pure torch, with tinycudann as an optional
accelerator on CUDA.

Layout and arithmetic follow tinycudann's ``HashGrid`` so that its parameters can be copied
between the two backends:

- level ``l`` has scale ``s_l = base * b**l - 1`` with ``b = exp(ln(max / base) / (levels - 1))``
  and grid resolution ``r_l = ceil(s_l) + 1``;
- a point ``x`` in ``[0, 1]^3`` sits at ``p = x * s_l + 0.5`` in level ``l``; its 8 corners are
  ``floor(p) + {0, 1}^3`` and the trilinear weights use ``frac(p)``;
- a level stores ``n_l = min(T, next_multiple_of_8(r_l**3))`` feature vectors; when ``r_l**3 <= n_l``
  corners are indexed densely (``x + y r + z r^2``), otherwise by the spatial hash
  ``(x * 1) ^ (y * 2654435761) ^ (z * 805459861)``; either index is taken modulo ``n_l``;
- all levels are concatenated in one flat parameter of ``sum(n_l) * F`` values.

The table gradient is a scatter-add (``index_add_``), measured faster on CPU than the backward of
``F.embedding``; hashes are computed in int32 (products wrap like tinycudann's uint32 ones).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = [
    "HashGridConfig",
    "HashGrid",
    "level_layout",
    "hash_grid_encode",
    "hash_grid_reference",
    "tcnn_available",
]

PRIMES = (1, 2654435761, 805459861)


@dataclass(frozen=True)
class HashGridConfig:
    """Hash-grid hyper-parameters. The defaults are the small CPU ones; Instant-NGP / threestudio use
    16 levels, a 2^19 table and max resolution 2048 on a GPU."""

    levels: int = 8
    features_per_level: int = 2
    log2_table_size: int = 15
    base_resolution: int = 16
    max_resolution: int = 128
    init_scale: float = 1e-4

    def __post_init__(self) -> None:
        if self.levels < 1:
            raise ValueError(f"HashGridConfig.levels: expected >= 1, got {self.levels}")
        if self.features_per_level < 1:
            raise ValueError(f"HashGridConfig.features_per_level: expected >= 1, got {self.features_per_level}")
        if not 4 <= self.log2_table_size <= 26:
            raise ValueError(f"HashGridConfig.log2_table_size: expected 4..26, got {self.log2_table_size}")
        if self.base_resolution < 2 or self.max_resolution < self.base_resolution:
            raise ValueError(
                "HashGridConfig.base_resolution/max_resolution: expected 2 <= base <= max, got "
                f"{self.base_resolution}, {self.max_resolution}"
            )

    @property
    def output_dim(self) -> int:
        return self.levels * self.features_per_level

    @property
    def per_level_scale(self) -> float:
        if self.levels == 1:
            return 1.0
        return math.exp(math.log(self.max_resolution / self.base_resolution) / (self.levels - 1))


@dataclass(frozen=True)
class LevelLayout:
    scales: tuple[float, ...]  # s_l
    resolutions: tuple[int, ...]  # r_l
    sizes: tuple[int, ...]  # n_l (feature vectors per level)
    offsets: tuple[int, ...]  # first feature vector of each level in the flat table
    dense: tuple[bool, ...]

    @property
    def total(self) -> int:
        return self.offsets[-1] + self.sizes[-1]


def level_layout(cfg: HashGridConfig) -> LevelLayout:
    table = 1 << cfg.log2_table_size
    scales, res, sizes, offsets, dense = [], [], [], [], []
    offset = 0
    for level in range(cfg.levels):
        scale = cfg.base_resolution * 2.0 ** (level * math.log2(cfg.per_level_scale)) - 1.0
        r = int(math.ceil(scale)) + 1
        n = min(table, (r**3 + 7) // 8 * 8)
        scales.append(scale)
        res.append(r)
        sizes.append(n)
        offsets.append(offset)
        dense.append(r**3 <= n)
        offset += n
    return LevelLayout(tuple(scales), tuple(res), tuple(sizes), tuple(offsets), tuple(dense))


def _as_int32(value: int) -> int:
    """The int32 with the same bits as the uint32 ``value`` (int32 products wrap like uint32 ones)."""
    return value - (1 << 32) if value >= 1 << 31 else value


def _corner_rows(layout: LevelLayout, level: int, base: Tensor) -> Tensor:
    """Flat table rows of the 8 corners of level ``level``'s cells with lower corners ``base``
    [3, N] (int32) -> [8, N]; corner i uses bit 0 for x, bit 1 for y, bit 2 for z."""
    r = layout.resolutions[level]
    dense = layout.dense[level]
    factors = (1, r, r * r) if dense else tuple(_as_int32(p) for p in PRIMES)
    cx, cy, cz = (torch.stack([base[k], base[k] + 1]) * factors[k] for k in range(3))  # [2, N] each
    if dense:
        idx = torch.remainder((cz[:, None] + cy[None])[:, :, None] + cx[None, None], layout.sizes[level])
    else:  # hashed levels hold the whole table, a power of two: the modulo is a bit mask
        idx = ((cz[:, None] ^ cy[None])[:, :, None] ^ cx[None, None]) & (layout.sizes[level] - 1)
    return idx.reshape(8, -1) + layout.offsets[level]


def _trilinear_weights(frac: Tensor) -> Tensor:
    """Corner weights [L, 8, N] from the fractional positions [L, 3, N]."""
    wx, wy, wz = (torch.stack([1.0 - frac[:, k], frac[:, k]], 1) for k in range(3))  # [L, 2, N]
    w = (wz[:, :, None] * wy[:, None])[:, :, :, None] * wx[:, None, None]  # [L, 2, 2, 2, N]
    return w.reshape(w.shape[0], 8, -1)


class _WeightedGather(torch.autograd.Function):
    """``out[f, l, n] = sum_c table_t[f, index[l, c, n]] * weights[l, c, n]`` in one node.

    Written out because autograd's version (gather, multiply, sum) kept the gathered features and
    copied them twice in the backward: this is 1.5x faster per step on a CPU. The backward uses
    differentiable ops, so double backward (the NeRF's training normals) works through it.
    """

    @staticmethod
    def forward(ctx, table_t: Tensor, index: Tensor, weights: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(table_t, index, weights)
        feats = table_t.index_select(1, index.reshape(-1)).view(table_t.shape[0], *weights.shape)
        return (feats * weights).sum(2)  # [F, L, N]

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        table_t, index, weights = ctx.saved_tensors
        grad_table = grad_weights = None
        if ctx.needs_input_grad[0]:
            per_corner = (grad.unsqueeze(2) * weights).reshape(grad.shape[0], -1)
            grad_table = torch.zeros_like(table_t).index_add(1, index.reshape(-1), per_corner)
        if ctx.needs_input_grad[2]:
            feats = table_t.index_select(1, index.reshape(-1)).view(table_t.shape[0], *weights.shape)
            grad_weights = (grad.unsqueeze(2) * feats).sum(0)
        return grad_table, None, grad_weights


def hash_grid_encode(x: Tensor, table: Tensor, cfg: HashGridConfig, layout: LevelLayout | None = None) -> Tensor:
    """Encode points ``x`` [N, 3] in [0, 1]^3 with the flat feature table [sum(n_l), F] -> [N, L * F]
    (level-major, as tinycudann).

    Work is laid out with the points last (``[L, 8, N]`` corners, ``[F, L, N]`` features), so every
    elementwise op and broadcast runs along contiguous memory: 1.3-1.6x faster on a CPU than the
    earlier corners-last layout, whose broadcasts over an axis of 2 were slow.
    """
    layout = layout or level_layout(cfg)
    n, levels = x.shape[0], cfg.levels
    scales = torch.tensor(layout.scales, dtype=x.dtype, device=x.device)
    pos = x.t()[None] * scales[:, None, None] + 0.5  # [L, 3, N]
    base = torch.floor(pos)
    frac = pos - base
    base = base.to(torch.int32)
    rows = torch.stack([_corner_rows(layout, level, base[level]) for level in range(levels)])  # [L, 8, N]
    weights = _trilinear_weights(frac).to(table.dtype)
    out = _WeightedGather.apply(table.t().contiguous(), rows.long(), weights)  # [F, L, N]
    return out.permute(2, 1, 0).reshape(n, -1)


def hash_grid_reference(point: tuple[float, float, float], table: Tensor, cfg: HashGridConfig) -> Tensor:
    """Direct, loop-by-loop encoding of one point (for tests): [L * F]."""
    layout = level_layout(cfg)
    out = []
    for level in range(cfg.levels):
        s, r, n, off = layout.scales[level], layout.resolutions[level], layout.sizes[level], layout.offsets[level]
        p = [c * s + 0.5 for c in point]
        b = [math.floor(c) for c in p]
        f = [c - math.floor(c) for c in p]
        acc = torch.zeros(table.shape[1], dtype=table.dtype)
        for dx in (0, 1):
            for dy in (0, 1):
                for dz in (0, 1):
                    gx, gy, gz = b[0] + dx, b[1] + dy, b[2] + dz
                    if layout.dense[level]:
                        idx = gx + gy * r + gz * r * r
                    else:
                        idx = ((gx * PRIMES[0]) ^ (gy * PRIMES[1]) ^ (gz * PRIMES[2])) % (1 << 32)
                    idx = idx % n + off
                    w = (f[0] if dx else 1 - f[0]) * (f[1] if dy else 1 - f[1]) * (f[2] if dz else 1 - f[2])
                    acc = acc + w * table[idx]
        out.append(acc)
    return torch.cat(out)


def tcnn_available() -> bool:
    try:
        import tinycudann  # noqa: F401
    except Exception:  # ImportError, or a broken build raising at import
        return False
    return torch.cuda.is_available()


class HashGrid(nn.Module):
    """Hash-grid encoding of points in [0, 1]^3 -> [N, levels * features].

    ``backend``: "torch" (the reference, any device), "tcnn" (tinycudann, CUDA only) or "auto"
    (tinycudann when it imports and the module is used on CUDA). Both backends read the same flat
    parameter ``table``, so state dicts are interchangeable.
    """

    def __init__(self, cfg: HashGridConfig = HashGridConfig(), backend: str = "auto", generator: torch.Generator | None = None):
        super().__init__()
        if backend not in ("auto", "torch", "tcnn"):
            raise ValueError(f"backend: expected 'auto', 'torch' or 'tcnn', got {backend!r}")
        self.cfg = cfg
        self.backend = backend
        self.layout = level_layout(cfg)
        init = (torch.rand(self.layout.total, cfg.features_per_level, generator=generator) * 2 - 1) * cfg.init_scale
        self.table = nn.Parameter(init)
        self._tcnn: nn.Module | None = None

    @property
    def output_dim(self) -> int:
        return self.cfg.output_dim

    def active_backend(self, device: torch.device) -> str:
        if self.backend == "torch" or device.type != "cuda":
            if self.backend == "tcnn" and device.type != "cuda":
                raise ValueError("backend: 'tcnn' needs CUDA tensors")
            return "torch"
        if tcnn_available():
            return "tcnn"
        if self.backend == "tcnn":
            raise ValueError("backend: 'tcnn' requested but tinycudann does not import")
        return "torch"

    def forward(self, x: Tensor) -> Tensor:
        if self.active_backend(x.device) == "tcnn":
            return self._forward_tcnn(x)
        return hash_grid_encode(x, self.table, self.cfg, self.layout)

    def _forward_tcnn(self, x: Tensor) -> Tensor:
        import tinycudann as tcnn

        if self._tcnn is None:
            enc = tcnn.Encoding(
                3,
                {
                    "otype": "HashGrid",
                    "n_levels": self.cfg.levels,
                    "n_features_per_level": self.cfg.features_per_level,
                    "log2_hashmap_size": self.cfg.log2_table_size,
                    "base_resolution": self.cfg.base_resolution,
                    "per_level_scale": self.cfg.per_level_scale,
                },
                dtype=torch.float32,
            ).to(x.device)
            # share storage: tinycudann's flat parameter has our layout
            if enc.params.numel() != self.table.numel():
                warnings.warn(
                    f"tinycudann's hash grid has {enc.params.numel()} parameters, ui3d's layout "
                    f"{self.table.numel()}; using the torch hash grid"
                )
                self.backend = "torch"
                return hash_grid_encode(x, self.table, self.cfg, self.layout)
            del enc.params
            self._tcnn = enc
        self._tcnn.params = self.table.view(-1)  # type: ignore[assignment]
        return self._tcnn(x).to(x.dtype)
