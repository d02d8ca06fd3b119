"""Which learned estimator breaks a 2-D run: the fake score or the density ratio?

`python -m systems.swap_2d --swap ratio --divergences js --seeds 3 --out DIR [key=value ...]` trains
:mod:`systems.distill_2d` with learned estimators, except that the generator's loss takes one of
them from the exact oracle:

- ``--swap ratio``: the learned fake score's ε̂_q, the exact log p_t/q_t;
- ``--swap scores``: the exact ε̂_q, the learned discriminator's logit.

The exact oracle is the one of ``oracle=exact``: q_t is the Gaussian-smoothed set of the batch plus
``oracle_samples`` more generator samples. The learned fake score and discriminator train as usual
(they only stop being read where swapped). Clamp and self-normalisation of the ratio apply to both.
A run that trains with one swap and fails without it locates the failure in the swapped estimator.
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch import Tensor

from systems.bench_2d import hooked_bench_main
from systems.distill_2d import Distill2DConfig, TrainHooks
from ui3d.diffusion import Noise
from ui3d.errors import UserError
from ui3d.generator import MLPGenerator
from ui3d.guidance import GeneratorTurn, Guidance
from ui3d.guidance.fake.base import FakePrediction
from ui3d.guidance.fake.empirical import EmpiricalFakeScore

SWAPS = ("ratio", "scores")


class SwappedFake:
    """ε̂_q from one fake score and the logit from another; trains nothing itself."""

    def __init__(self, eps_from, logit_from):
        self.eps_from, self.logit_from = eps_from, logit_from

    def predict(self, x_t: Tensor, level, cond, with_logit: bool = True) -> FakePrediction:
        eps = self.eps_from.predict(x_t, level, cond, with_logit=False).eps
        logit = self.logit_from.predict(x_t, level, cond, with_logit=True).logit if with_logit else None
        return FakePrediction(eps, logit)


class SwapHooks:
    """Training hooks (picklable for the process pool): ``after_step`` keeps the generator, whose extra
    samples make the exact q_t; ``generator_loss`` builds the swapped guidance of each step. Needs a
    warm-up (``warmup_steps`` > 0, 200 by default): without one, a worker's first generator step of a
    run comes before ``after_step`` and would draw from the previous run's generator."""

    def __init__(self, swap: str, oracle_samples: int):
        if swap not in SWAPS:
            raise UserError(f"--swap: expected one of {', '.join(SWAPS)}, got {swap!r}")
        self.swap, self.oracle_samples = swap, oracle_samples
        self.generator: MLPGenerator | None = None
        self.rng: torch.Generator | None = None  # made in the worker (a Generator does not pickle)

    def after_step(self, step: int, generator: MLPGenerator, fake) -> None:
        if step == 0:  # a worker process may run several seeds: each run starts the same way
            self.rng = torch.Generator().manual_seed(0)
        self.generator = generator

    def generator_loss(self, guidance: Guidance, x_g: Tensor, noise: Noise) -> GeneratorTurn:
        samples = x_g.detach()
        if self.generator is not None and self.rng is not None:
            with torch.no_grad():
                extra = self.generator(self.generator.sample_latent(self.oracle_samples, self.rng))
            samples = torch.cat([samples, extra])
        exact = EmpiricalFakeScore(guidance.teacher.mixture, samples)
        learned = guidance.fake
        fake = SwappedFake(learned, exact) if self.swap == "ratio" else SwappedFake(exact, learned)
        return Guidance(guidance.cfg, guidance.teacher, fake, guidance.denoising_weight).generator_loss(x_g, noise)


def main(argv: list[str] | None = None) -> int:
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--swap", required=True, choices=SWAPS)

    return hooked_bench_main(argv, "swap_2d", __doc__.splitlines()[0], add_arguments, _hooks, divergences="js")


def _hooks(args: argparse.Namespace, base: Distill2DConfig) -> TrainHooks:
    if base.oracle != "learned":
        raise UserError("swap_2d swaps one learned estimator for the exact one: it needs oracle=learned")
    swap = SwapHooks(args.swap, base.oracle_samples)
    return TrainHooks(generator_loss=swap.generator_loss, after_step=swap.after_step)


if __name__ == "__main__":
    sys.exit(main())
