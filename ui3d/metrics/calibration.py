"""How well a learned log density ratio matches the truth, per noise level (UNI_INSTRUCT.md §1.5).

A discriminator trained with the BCE of §1.5 has log(p_t/q_t) as its optimum. Against an exact
log-ratio (2-D mixtures, where p_t and q_t are known) the estimate is judged per σ bin by the
correlation and the calibration slope (least squares of the estimate on the truth: 1 = calibrated,
< 1 = under-confident, > 1 = over-confident), and the spread of each. In 3D, where the truth is
unknown, a ratio must still show its defining property: the spread of log r shrinks toward 0 as the
noise grows (:func:`spread_by_bin`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

__all__ = ["CalibrationBin", "calibration_by_bin", "spread_by_bin"]


@dataclass(frozen=True)
class CalibrationBin:
    low: float  # the bin's noise range [low, high)
    high: float
    n: int
    correlation: float
    slope: float  # least squares of the estimate on the truth
    intercept: float
    true_std: float
    estimate_std: float

    def as_dict(self) -> dict:
        return asdict(self)


def _edges(noise: Tensor, bins: int, log: bool) -> Tensor:
    lo, hi = float(noise.min()), float(noise.max())
    if log:
        return torch.logspace(torch.log10(torch.tensor(lo)), torch.log10(torch.tensor(hi)), bins + 1, dtype=torch.float64)
    return torch.linspace(lo, hi, bins + 1, dtype=torch.float64)


def _bin_index(noise: Tensor, edges: Tensor) -> Tensor:
    return (torch.bucketize(noise.double(), edges[1:-1], right=True)).clamp(0, len(edges) - 2)


def calibration_by_bin(estimate: Tensor, truth: Tensor, noise: Tensor, bins: int = 6, log: bool = True) -> list[CalibrationBin]:
    """Per bin of ``noise`` (σ; log-spaced by default): correlation and slope of ``estimate`` on
    ``truth`` (both [N] log-ratios). Bins with fewer than 3 samples are left out."""
    if not (estimate.shape == truth.shape == noise.shape and estimate.ndim == 1):
        raise ValueError(f"estimate, truth and noise must be [N], got {tuple(estimate.shape)}, {tuple(truth.shape)}, {tuple(noise.shape)}")
    edges = _edges(noise, bins, log)
    index = _bin_index(noise, edges)
    rows = []
    for b in range(bins):
        sel = index == b
        if int(sel.sum()) < 3:
            continue
        e, t = estimate[sel].double(), truth[sel].double()
        ec, tc = e - e.mean(), t - t.mean()
        var_t = float((tc * tc).mean())
        cov = float((ec * tc).mean())
        std_e, std_t = float(ec.pow(2).mean().sqrt()), var_t ** 0.5
        corr = cov / (std_e * std_t) if std_e > 0 and std_t > 0 else float("nan")
        slope = cov / var_t if var_t > 0 else float("nan")
        rows.append(CalibrationBin(float(edges[b]), float(edges[b + 1]), int(sel.sum()), corr, slope,
                                   float(e.mean() - slope * t.mean()), std_t, std_e))
    return rows


def spread_by_bin(estimate: Tensor, noise: Tensor, edges: list[float]) -> list[dict]:
    """Standard deviation of ``estimate`` (log r) per bin of ``noise`` (e.g. timesteps) between
    ``edges``; a ratio should spread less as the noise grows."""
    rows = []
    e, n = estimate.double(), noise.double()
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (n >= lo) & (n < hi)
        if int(sel.sum()) >= 2:
            rows.append({"low": lo, "high": hi, "n": int(sel.sum()), "std": float(e[sel].std()), "mean": float(e[sel].mean())})
    return rows
