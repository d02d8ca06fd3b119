"""The fake score of one-step image distillation: a full trainable copy of the teacher's VP network
with a discriminator head on its bottleneck (UNI_INSTRUCT.md §1.5, §3).

The copy is queried at EDM noise levels like the teacher (:func:`~ui3d.diffusion.vp_network_eps`).
The per-sample logit is the spatial mean of a 1×1 convolution of the U-Net's mid-block output,
taken in the same forward as ε̂; the head starts at zero, so r = exp(logit) = 1 at first.
"""

from __future__ import annotations

from torch import Tensor, nn

from ui3d.diffusion import NoiseLevel, VPSchedule, per_sample, vp_network_eps
from ui3d.guidance.fake.base import FakePrediction
from ui3d.teachers.image import trainable_copy
from ui3d.teachers.protocol import Conditioning


def _bottleneck_module(network: nn.Module) -> tuple[nn.Module, int]:
    unet = getattr(network, "unet", network)
    mid = getattr(unet, "mid_block", None)
    if mid is None:
        raise ValueError(f"{type(unet).__name__} has no mid block for the discriminator head")
    return mid, unet.config.block_out_channels[-1]


class DistillFakeScore(nn.Module):
    """A full trainable copy of the teacher's network + a discriminator head on its bottleneck."""

    def __init__(self, network: nn.Module, schedule: VPSchedule, prediction: str = "epsilon"):
        super().__init__()
        self.network = trainable_copy(network).train()
        self.schedule, self.prediction = schedule, prediction
        mid, channels = _bottleneck_module(self.network)
        self.discriminator_head = nn.Conv2d(channels, 1, kernel_size=1)
        nn.init.zeros_(self.discriminator_head.weight)
        nn.init.zeros_(self.discriminator_head.bias)
        self._bottleneck: Tensor | None = None  # set by the hook during one forward only
        mid.register_forward_hook(self._keep_bottleneck)

    def _keep_bottleneck(self, module, inputs, output) -> None:
        self._bottleneck = output[0] if isinstance(output, tuple) else output

    def predict(self, x_t: Tensor, level: NoiseLevel, cond: Conditioning = Conditioning(),
                with_logit: bool = True) -> FakePrediction:
        """ε̂_ψ(x_t; σ, c) and the per-sample logit of log(p_σ/q_σ) from the same forward (no CFG)."""
        x = x_t / per_sample(level.alpha, x_t)  # the EDM point (α = 1 for EDM levels)
        try:
            eps = vp_network_eps(self.network, self.schedule, self.prediction, x, level.edm_sigma, cond.cond)
            logit = self.discriminator_head(self._bottleneck.float()).flatten(1).mean(1) if with_logit else None
        finally:
            self._bottleneck = None
        return FakePrediction(eps, logit)
