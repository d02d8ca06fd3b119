"""The exact fake score of a finite set of generator samples (§6.3 oracle (i)).

q_t is the Gaussian-smoothed empirical distribution of the samples, so ε̂_q = −σ·∇log q_t and the
log-ratio against a known teacher mixture are exact at every noise level: the oracle that tells an
estimator's error from the method's.
"""

from __future__ import annotations

from torch import Tensor

from ui3d.diffusion import NoiseLevel, per_sample
from ui3d.guidance.fake.base import FakePrediction
from ui3d.teachers.exact import GaussianMixture, log_density_ratio
from ui3d.teachers.protocol import Conditioning


class EmpiricalFakeScore:
    def __init__(self, teacher: GaussianMixture, samples: Tensor):
        self.teacher = teacher
        self.q = GaussianMixture.empirical(samples)

    def predict(self, x_t: Tensor, level: NoiseLevel, cond: Conditioning = Conditioning(),
                with_logit: bool = True) -> FakePrediction:
        eps = -per_sample(level.sigma, x_t) * self.q.score(x_t, level.sigma, level.alpha)
        logit = log_density_ratio(self.teacher, self.q, x_t, level.sigma, level.alpha) if with_logit else None
        return FakePrediction(eps, logit)
