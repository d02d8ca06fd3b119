"""systems.by_parts_profile: by_parts' weight over static's on a table whose answer is known, and the
command on the built-in teacher's levels."""

import pytest
import torch

from systems.by_parts_profile import main, profile, relative_weight
from ui3d.diffusion import LogUniformSigma
from ui3d.divergence.by_parts import TAPER_WIDTH
from ui3d.guidance.levels import log_uniform_levels


def test_uniform_levels_give_static_in_the_middle_and_a_negative_top():
    """π uniform in u and w = σ⁴/2 (mean_abs, α = 1): Λ'/π = σ²·(τ + τ'/2), so the ratio is 1 where
    the taper τ is flat, above 1 on the rising ramp and below 0 on the falling one's second half."""
    table = log_uniform_levels(LogUniformSigma(0.05, 8.0))
    ratio = relative_weight(table)
    x = (table.u - table.u[0]) / (table.u[-1] - table.u[0])
    middle = (x > TAPER_WIDTH + 0.02) & (x < 1 - TAPER_WIDTH - 0.02)
    assert ratio[middle] == pytest.approx(torch.ones(int(middle.sum()), dtype=ratio.dtype), abs=1e-3)
    assert ratio[x < TAPER_WIDTH].max() > 1.5
    assert ratio[x > 1 - TAPER_WIDTH / 2].max() < 0 and ratio[x > 1 - TAPER_WIDTH].min() < -1
    # the weights' mean over the draws is the integral of (τ + τ'/2): the taper's area (1 − TAPER_WIDTH)
    assert float((ratio * table.prob).sum()) == pytest.approx(1 - TAPER_WIDTH, abs=0.01)


def test_profile_bins_cover_every_draw_once():
    table = log_uniform_levels(LogUniformSigma(0.05, 8.0))
    rows = profile(table)
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    assert all(r["least"] <= r["mean"] <= r["largest"] for r in rows)


def test_the_command_on_the_builtin_teacher(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") >= 6 and "| [10, inf) |" in out
    assert main(["t_max=2"]) == 2  # out of range: one line, exit 2
    assert capsys.readouterr().err.count("\n") == 1
