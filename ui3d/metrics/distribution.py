"""Sample-based distribution metrics for the 2-D mixture benchmark (UNI_INSTRUCT.md §6.3).

Pure torch, float64 internally. Two families:

* `energy_distance`: a two-sample distance between generator and teacher samples;
* `mode_stats`: per-mode mass, covered modes, mode-weight TV, off-mode fraction and per-mode
  std ratio against a known isotropic Gaussian mixture (the teacher).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["ModeStats", "energy_distance", "mode_stats"]

# Pairwise-distance blocks hold at most this many float64 entries (32 MiB).
_DEFAULT_CHUNK_ELEMENTS = 1 << 22


def _as_points(name: str, t: Tensor) -> Tensor:
    if not isinstance(t, Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor of shape [n, d], got {type(t).__name__}")
    if t.ndim != 2:
        raise ValueError(
            f"{name}: expected shape [n, d], got {tuple(t.shape)} (use x[:, None] for 1-D samples)"
        )
    return t.detach().to(dtype=torch.float64)


def _pairwise_distance_sum(a: Tensor, b: Tensor, max_chunk_elements: int) -> float:
    """Sum over all pairs (i, j) of |a_i - b_j|, in row blocks of at most `max_chunk_elements`."""
    rows = max(1, max_chunk_elements // max(1, b.shape[0]))
    total = torch.zeros((), dtype=torch.float64, device=a.device)
    for start in range(0, a.shape[0], rows):
        block = a[start : start + rows]
        # The direct (not matmul) form gives exact zeros on the diagonal and no cancellation.
        d = torch.cdist(block, b, compute_mode="donot_use_mm_for_euclid_dist")
        total = total + d.sum()
    return float(total)


def energy_distance(
    x: Tensor, y: Tensor, *, max_chunk_elements: int = _DEFAULT_CHUNK_ELEMENTS
) -> float:
    """Squared energy distance 2E|X-Y| - E|X-X'| - E|Y-Y'| between samples x [n, d] and y [m, d].

    The within-sample terms are unbiased U-statistics (the diagonal i == j is excluded), so the
    value is unbiased for the population distance and can be slightly negative when x and y come
    from the same distribution. Distances are computed in blocks of at most `max_chunk_elements`
    pairs, so n = m = 20000 needs about 32 MiB. Non-finite samples give NaN (not dropped).
    """
    x = _as_points("x", x)
    y = _as_points("y", y).to(device=x.device)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y: dimensions differ, x is {tuple(x.shape)}, y is {tuple(y.shape)}")
    if x.shape[1] == 0:
        raise ValueError(f"x and y: expected at least one dimension, got shape {tuple(x.shape)}")
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError(f"x and y: expected at least 2 samples each, got n={n}, m={m}")
    if max_chunk_elements < 1:
        raise ValueError(f"max_chunk_elements: expected a positive int, got {max_chunk_elements}")
    e_xy = _pairwise_distance_sum(x, y, max_chunk_elements) / (n * m)
    e_xx = _pairwise_distance_sum(x, x, max_chunk_elements) / (n * (n - 1))
    e_yy = _pairwise_distance_sum(y, y, max_chunk_elements) / (m * (m - 1))
    return 2.0 * e_xy - e_xx - e_yy


@dataclass(frozen=True)
class ModeStats:
    """Mode-level summary of samples against a K-component isotropic Gaussian mixture.

    mode_weights: fraction of ALL samples (non-finite ones included) that are on-mode for mode k.
    modes_covered: number of modes whose mode_weights entry exceeds `min_fraction`.
    mode_weight_tv: 0.5 * sum_k |w_hat_k - w_k| between the normalised histogram of on-mode
        samples and the true weights; 1.0 (the maximum) when no sample is on-mode.
    off_mode_fraction: fraction of samples farther than n_std * std_k from their nearest mean
        (non-finite samples count as off-mode).
    std_ratio: per mode, the empirical std of its on-mode samples (average over dimensions)
        divided by the true std; NaN when the mode has fewer than 2 on-mode samples.
    """

    mode_weights: tuple[float, ...]
    modes_covered: int
    mode_weight_tv: float
    off_mode_fraction: float
    std_ratio: tuple[float, ...]


def _check_mixture(means: Tensor, stds: Tensor, weights: Tensor, d: int) -> tuple[Tensor, Tensor, Tensor]:
    means = _as_points("means", means)
    k = means.shape[0]
    if k < 1 or means.shape[1] != d:
        raise ValueError(f"means: expected shape [K, {d}] with K >= 1, got {tuple(means.shape)}")
    stds = torch.as_tensor(stds).detach().to(dtype=torch.float64, device=means.device)
    if stds.ndim == 0:
        stds = stds.expand(k)
    weights = torch.as_tensor(weights).detach().to(dtype=torch.float64, device=means.device)
    for name, t in (("stds", stds), ("weights", weights)):
        if t.shape != (k,):
            raise ValueError(f"{name}: expected shape [{k}] (one per mode), got {tuple(t.shape)}")
    if not torch.isfinite(means).all():
        raise ValueError("means: expected finite values")
    if not (torch.isfinite(stds).all() and (stds > 0).all()):
        raise ValueError(f"stds: expected finite positive values, got {stds.tolist()}")
    if not (torch.isfinite(weights).all() and (weights >= 0).all() and weights.sum() > 0):
        raise ValueError(f"weights: expected finite non-negative values with a positive sum, got {weights.tolist()}")
    return means, stds, weights / weights.sum()


def mode_stats(
    samples: Tensor,
    means: Tensor,
    stds: Tensor,
    weights: Tensor,
    *,
    n_std: float = 3.0,
    min_fraction: float = 0.01,
) -> ModeStats:
    """Assign each sample to its nearest mean (Euclidean); it is on-mode iff that distance is at
    most n_std * std_k. Weights are normalised here. Non-finite samples are off-mode and stay in
    every denominator.

    Note: in d dimensions the on-mode ball of an isotropic Gaussian holds P(chi2_d <= n_std^2) of
    its mass; for d = 2 and n_std = 3 an exact sample is off-mode with probability exp(-4.5),
    about 0.011 (not the 1-D 0.0027), and the truncated std ratio is about 0.974.
    """
    samples = _as_points("samples", samples)
    n, d = samples.shape
    if n < 1:
        raise ValueError("samples: expected at least one sample, got an empty tensor")
    if not (math.isfinite(n_std) and n_std > 0):
        raise ValueError(f"n_std: expected a positive number, got {n_std}")
    if not (0.0 <= min_fraction < 1.0):
        raise ValueError(f"min_fraction: expected a number in [0, 1), got {min_fraction}")
    means, stds, weights = _check_mixture(means, stds, weights, d)
    samples = samples.to(means.device)
    k = means.shape[0]

    finite = torch.isfinite(samples).all(dim=1)
    pts = samples[finite]
    dist = torch.cdist(pts, means, compute_mode="donot_use_mm_for_euclid_dist")  # [n_finite, K]
    nearest_d, nearest = dist.min(dim=1)
    on = nearest_d <= n_std * stds[nearest]

    counts = torch.bincount(nearest[on], minlength=k).to(torch.float64)
    mode_weights = counts / n
    n_on = counts.sum()
    if n_on > 0:
        tv = 0.5 * float((counts / n_on - weights).abs().sum())
    else:
        tv = 1.0
    std_ratio = []
    for j in range(k):
        members = pts[on & (nearest == j)]
        if members.shape[0] < 2:
            std_ratio.append(math.nan)
        else:
            std_ratio.append(float(members.std(dim=0, correction=1).mean() / stds[j]))
    return ModeStats(
        mode_weights=tuple(float(w) for w in mode_weights),
        modes_covered=int((mode_weights > min_fraction).sum()),
        mode_weight_tv=tv,
        off_mode_fraction=float((n - n_on) / n),
        std_ratio=tuple(std_ratio),
    )
