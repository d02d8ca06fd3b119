"""Uni-Instruct guidance: one :class:`Guidance` (the divergence core + a frozen teacher + a fake
score + the ratio from its logit) for text-to-3D, one-step image distillation and the 2-D benchmark.
Only the producer of x differs: scene.render → teacher.encode, or a generator G(z, c).

    config.py     GuidanceConfig (one config for all), GUIDANCE_PRESETS sds / vsd / uni-instruct
    guidance.py   Guidance: generator_loss and fake_score_loss, the stop-gradients of both turns
    fake/         every fake score: LoRA (3D), full copy (images), MLP and exact (2-D)

Teachers reach it through the adapters of :mod:`ui3d.teachers.guided`; noise levels and draws are
:mod:`ui3d.diffusion.noise`'s.
"""

from .config import GUIDANCE_PRESETS, GuidanceConfig, guidance_preset
from .guidance import EDMDenoisingWeight, FakeTurnLosses, GeneratorTurn, Guidance, eps_mse, frozen

__all__ = ["GUIDANCE_PRESETS", "GuidanceConfig", "guidance_preset", "EDMDenoisingWeight", "FakeTurnLosses",
           "GeneratorTurn", "Guidance", "eps_mse", "frozen"]
