"""The fake-score protocol: what the guidance asks of every fake score.

A fake score models the generator's own noisy distribution q_t. One call returns its prediction
ε̂_q at x_t = α·x + σ·ε and, when asked, its per-sample discriminator logit ≈ log(p_t/q_t) (exact
for the oracles), both as values: nothing is cached between calls, so the generator's adversarial
term gets the logit with its graph from the same call that gave ε̂_q.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from torch import Tensor

from ui3d.diffusion import NoiseLevel
from ui3d.teachers.protocol import Conditioning


class FakePrediction(NamedTuple):
    eps: Tensor  # ε̂_q(x_t), like x_t
    logit: Tensor | None  # [B] logit of log(p_t/q_t); None when not asked for


class FakeScore(Protocol):
    def predict(self, x_t: Tensor, level: NoiseLevel, cond: Conditioning = Conditioning(),
                with_logit: bool = True) -> FakePrediction:
        ...
