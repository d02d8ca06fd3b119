"""The VSD / Uni-Instruct fake score: a LoRA of the teacher's UNet with a camera embedding and a
discriminator head on its bottleneck (UNI_INSTRUCT.md §1.1, §1.5, §4).

It wraps a copy of the teacher's ε-network (any module with ``forward(x_t, t, embeddings)`` and a
diffusers ``UNet2DConditionModel`` at ``.unet``: Stable Diffusion's or the built-in teacher's).
Only the LoRA weights (peft), the camera embedding and the discriminator head train. At
initialisation the fake score equals the teacher: LoRA's B matrices and the camera embedding's
last layer start at zero. The camera and the bottleneck reach the U-Net's hooks for the length of
one forward only.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from ui3d.diffusion import NoiseLevel
from ui3d.guidance.fake.base import FakePrediction
from ui3d.teachers.protocol import Conditioning

LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


class LoRAFakeScore(nn.Module):
    def __init__(self, eps_network: nn.Module, rank: int = 4, camera_dim: int = 16):
        super().__init__()
        from peft import LoraConfig

        self.network = copy.deepcopy(eps_network)
        self.network.requires_grad_(False)
        unet = self.network.unet
        unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=LORA_TARGETS))
        embed_dim = unet.time_embedding.linear_2.out_features
        self.camera_embedding = nn.Sequential(nn.Linear(camera_dim, embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim))
        nn.init.zeros_(self.camera_embedding[-1].weight)
        nn.init.zeros_(self.camera_embedding[-1].bias)
        self.discriminator_head = nn.Conv2d(unet.config.block_out_channels[-1], 1, kernel_size=1)
        self.camera_dim = camera_dim
        self._camera: Tensor | None = None
        self._bottleneck: Tensor | None = None
        unet.time_embedding.register_forward_hook(self._add_camera)
        unet.mid_block.register_forward_hook(self._keep_bottleneck)

    def _add_camera(self, module, inputs, output: Tensor) -> Tensor:
        return output if self._camera is None else output + self.camera_embedding(self._camera.to(output))

    def _keep_bottleneck(self, module, inputs, output: Tensor) -> None:
        self._bottleneck = output

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def forward(self, x_t: Tensor, t: Tensor, embeddings: Tensor, camera: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(ε̂, per-sample discriminator logit). ``camera`` [B, camera_dim] (e.g. flattened c2w), or None."""
        if camera is not None and camera.shape != (x_t.shape[0], self.camera_dim):
            raise ValueError(f"camera must be [batch, {self.camera_dim}], got {tuple(camera.shape)}")
        self._camera = camera
        try:
            eps = self.network(x_t, t, embeddings)
            logit = self.discriminator_head(self._bottleneck.float()).flatten(1).mean(1)
        finally:
            self._camera, self._bottleneck = None, None
        return eps, logit

    def predict(self, x_t: Tensor, level: NoiseLevel, cond: Conditioning = Conditioning(),
                with_logit: bool = True) -> FakePrediction:
        """The :class:`~ui3d.guidance.fake.base.FakeScore` call: at VP timesteps, conditioned on the
        prompt embeddings and the camera (the logit comes from the same forward)."""
        eps, logit = self(x_t, level.t, cond.cond, cond.camera)
        return FakePrediction(eps, logit if with_logit else None)


def camera_condition(c2w: Tensor, dropout: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
    """Flattened c2w [B, 16] as the camera condition, zeroed for a random ``dropout`` fraction (VSD's 10 %)."""
    cam = c2w.reshape(c2w.shape[0], 16).float()
    if dropout > 0:
        keep = torch.rand(cam.shape[0], generator=generator) >= dropout
        cam = cam * keep[:, None].to(cam)
    return cam
