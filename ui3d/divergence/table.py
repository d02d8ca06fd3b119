"""The f-divergence table of UNI_INSTRUCT.md §2.

Convention: r = p_t / q_t (teacher over generator) and D_f(p||q) = E_q[f(p/q)].
Each divergence supplies f and the closed forms of h = f''(r)·r² and its first two derivatives;
everything the losses need is derived from those:

    k   = h − r·h'          (Fisher weight)
    r·k' = −r²·h''          (since k' = h' − h' − r·h'' = −r·h'')
    2r·h'                   (the term the released code drops, §1.3)

Rows whose h' or h'' blow up at r → 0 (α-divergences, squared Hellinger) also give these columns in
closed form: the products above would be 0·∞ = NaN for a tiny r (below ~1e-26 in float32 for
Hellinger's r²·h'', ~1e-180 in float64 for α < 2).

Tests check h against autograd of f and every derived column against the closed forms of §2.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

TensorFn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Divergence:
    """One row of the §2 table: f and the closed forms of h, h', h''."""

    name: str
    f: TensorFn
    h: TensorFn
    dh: TensorFn
    d2h: TensorFn
    k_form: TensorFn | None = None  # closed forms of the derived columns, where the products overflow
    r_dk_form: TensorFn | None = None
    two_r_dh_form: TensorFn | None = None

    def k(self, r: Tensor) -> Tensor:
        """Fisher weight k = h − r·h'."""
        return self.k_form(r) if self.k_form is not None else self.h(r) - r * self.dh(r)

    def r_dk(self, r: Tensor) -> Tensor:
        """r·k'(r) = −r²·h''(r): the DI coefficient on ‖y‖²."""
        return self.r_dk_form(r) if self.r_dk_form is not None else -(r * r) * self.d2h(r)

    def two_r_dh(self, r: Tensor) -> Tensor:
        """2r·h'(r): the DI coefficient on ⟨y, c⟩."""
        return self.two_r_dh_form(r) if self.two_r_dh_form is not None else 2.0 * r * self.dh(r)


def _jeffreys(name: str, w_fkl: float, w_rkl: float) -> Divergence:
    """w_fkl·KL(p||q) + w_rkl·KL(q||p): f = w_fkl·r log r − w_rkl·log r, h = w_fkl·r + w_rkl."""
    return Divergence(
        name,
        f=lambda r: w_fkl * r * r.log() - w_rkl * r.log(),
        h=lambda r: w_fkl * r + w_rkl,
        dh=lambda r: w_fkl + 0 * r,
        d2h=lambda r: 0 * r,
    )


def alpha_divergence(alpha: float) -> Divergence:
    """Amari α-divergence: f = (r^α − αr − (1−α)) / (α(α−1)), h = r^α.

    α → 0 is reverse KL and α → 1 forward KL; those limits have their own rows ('rkl', 'fkl').
    """
    if not math.isfinite(alpha) or alpha in (0.0, 1.0):
        raise ValueError(
            f"alpha-divergence needs alpha not in {{0, 1}}, got {alpha}; "
            "use divergence 'rkl' (alpha -> 0) or 'fkl' (alpha -> 1)"
        )
    a = float(alpha)
    return Divergence(
        f"alpha{a:g}",
        f=lambda r: (r**a - a * r - (1 - a)) / (a * (a - 1)),
        h=lambda r: r**a,
        dh=lambda r: a * r ** (a - 1),
        d2h=lambda r: a * (a - 1) * r ** (a - 2),
        k_form=lambda r: (1 - a) * r**a,
        r_dk_form=lambda r: -a * (a - 1) * r**a,
        two_r_dh_form=lambda r: 2 * a * r**a,
    )


DIVERGENCES: dict[str, Divergence] = {
    d.name: d
    for d in (
        # Reverse KL, KL(q||p): mode-seeking; = SiD/SIM.
        Divergence("rkl", f=lambda r: -r.log(), h=lambda r: 1 + 0 * r,
                   dh=lambda r: 0 * r, d2h=lambda r: 0 * r),
        # Forward KL, KL(p||q): mode-covering.
        Divergence("fkl", f=lambda r: r * r.log(), h=lambda r: r,
                   dh=lambda r: 1 + 0 * r, d2h=lambda r: 0 * r),
        _jeffreys("jeffreys", 1.0, 1.0),
        # The paper's "JKL": 0.4·FKL + 0.6·RKL as coded in the released image code.
        _jeffreys("jkl", 0.4, 0.6),
        # Jensen–Shannon in the f-distill form (= 2·JSD).
        Divergence("js",
                   f=lambda r: r * r.log() - (r + 1) * ((r + 1) / 2).log(),
                   h=lambda r: r / (r + 1),
                   dh=lambda r: 1 / (r + 1) ** 2,
                   d2h=lambda r: -2 / (r + 1) ** 3),
        # Pearson χ²(p||q).
        Divergence("chi2", f=lambda r: (r - 1) ** 2, h=lambda r: 2 * r * r,
                   dh=lambda r: 4 * r, d2h=lambda r: 4 + 0 * r),
        # Squared Hellinger.
        Divergence("hellinger", f=lambda r: (r.sqrt() - 1) ** 2, h=lambda r: r.sqrt() / 2,
                   dh=lambda r: r.rsqrt() / 4, d2h=lambda r: -(r ** -1.5) / 8,
                   k_form=lambda r: r.sqrt() / 4, r_dk_form=lambda r: r.sqrt() / 8,
                   two_r_dh_form=lambda r: r.sqrt() / 2),
        # Softened reverse KL (f-distill).
        Divergence("softened_rkl",
                   f=lambda r: (r + 1) * ((r + 1) / (2 * r)).log(),
                   h=lambda r: 1 / (r + 1),
                   dh=lambda r: -1 / (r + 1) ** 2,
                   d2h=lambda r: 2 / (r + 1) ** 3),
    )
}

# Names accepted on the command line; "alpha:<a>" selects an α-divergence.
DIVERGENCE_NAMES: tuple[str, ...] = (*DIVERGENCES, "alpha:<a>")


def get_divergence(name: str) -> Divergence:
    """Look a divergence up by name: one of DIVERGENCE_NAMES, e.g. 'fkl' or 'alpha:0.5'."""
    key = name.strip().lower()
    if key.startswith("alpha:"):
        value = key.split(":", 1)[1]
        try:
            return alpha_divergence(float(value))
        except ValueError as err:
            if "alpha-divergence" in str(err):
                raise
            raise ValueError(f"divergence '{name}': alpha must be a number, got '{value}'") from None
    if key in DIVERGENCES:
        return DIVERGENCES[key]
    close = difflib.get_close_matches(key, list(DIVERGENCES), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ValueError(f"unknown divergence '{name}'; {hint}(choices: {', '.join(DIVERGENCE_NAMES)})")


def depends_on_ratio(div: Divergence) -> bool:
    """False when every weight of the loss is constant in r (reverse KL): no ratio estimator needed."""
    r = torch.tensor([0.5, 2.0], dtype=torch.float64)
    columns = (div.h(r), div.k(r), div.r_dk(r), div.two_r_dh(r))
    return any(float(c[0] - c[1]) != 0.0 for c in columns)
