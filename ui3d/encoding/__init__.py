"""Encodings: the multiresolution hash grid (pure torch; tinycudann when present on CUDA)."""

from ui3d.encoding.hashgrid import (
    HashGrid,
    HashGridConfig,
    hash_grid_encode,
    hash_grid_reference,
    level_layout,
    tcnn_available,
)

__all__ = [
    "HashGrid",
    "HashGridConfig",
    "hash_grid_encode",
    "hash_grid_reference",
    "level_layout",
    "tcnn_available",
]
