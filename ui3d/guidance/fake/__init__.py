"""Every fake score, behind one protocol (:class:`FakeScore`: ε̂_q and the discriminator logit as values).

- ``lora``: text-to-3D's LoRA of the teacher's U-Net with a camera embedding (VSD, Uni-Instruct).
- ``full_copy``: image distillation's full trainable copy of the teacher (SiD/SiDA).
- ``mlp``: the 2-D benchmark's MLP denoiser with its own discriminator trunk.
- ``empirical``: the 2-D benchmark's exact oracle from a set of generator samples.

SDS has no fake score: :class:`~ui3d.guidance.guidance.Guidance` without one uses the drawn noise,
the exact ε̂ of a Dirac at the current sample.
"""

from .base import FakePrediction, FakeScore
from .empirical import EmpiricalFakeScore
from .full_copy import DistillFakeScore
from .lora import LoRAFakeScore, camera_condition
from .mlp import MLPFakeScore

__all__ = ["FakePrediction", "FakeScore", "EmpiricalFakeScore", "DistillFakeScore", "LoRAFakeScore",
           "camera_condition", "MLPFakeScore"]
