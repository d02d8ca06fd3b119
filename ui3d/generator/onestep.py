"""The one-step image generator of distillation (UNI_INSTRUCT.md §3), in EDM denoiser units.

G_θ(z, c) = D_θ(σ_init·z; σ_init, c): one evaluation of a trainable copy of the teacher's VP network
(ε-, v- or x0-prediction at integer timesteps), queried at the EDM noise level σ_init as in the
image code (σ_init = 2.5 by default, snapped to the teacher's grid: a VP network only knows its own
timesteps; :func:`~ui3d.diffusion.vp_network_x0`). At initialisation it is the teacher's one-step
denoiser from pure noise.

From here on image distillation is text-to-3D's pipeline: its samples go to
:class:`ui3d.guidance.Guidance`, with the teacher as :class:`ui3d.teachers.guided.GuidedNetwork` and
the fake score as :class:`ui3d.guidance.fake.DistillFakeScore`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ui3d.diffusion import VPSchedule, snap_sigma, vp_network_x0
from ui3d.teachers.image import trainable_copy


class OneStepGenerator(nn.Module):
    """G_θ(z, c) = D_θ(σ_init·z; σ_init, c): one evaluation of a copy of the teacher's network."""

    def __init__(self, network: nn.Module, schedule: VPSchedule, prediction: str = "epsilon",
                 sigma_init: float = 2.5, channels: int = 3, resolution: int = 32):
        super().__init__()
        if sigma_init <= 0:
            raise ValueError(f"sigma_init must be positive, got {sigma_init}")
        self.network = trainable_copy(network).train()
        self.schedule, self.prediction = schedule, prediction
        self.sigma_init = float(snap_sigma(schedule, torch.tensor([float(sigma_init)]))[0])
        self.shape = (channels, resolution, resolution)

    def sample_latent(self, n: int, generator: torch.Generator) -> Tensor:
        return torch.randn(n, *self.shape, generator=generator)

    def forward(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        sigma = torch.full((z.shape[0],), self.sigma_init, device=z.device, dtype=z.dtype)
        return vp_network_x0(self.network, self.schedule, self.prediction, self.sigma_init * z, sigma, cond)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]
