"""The networks of one-step image distillation (UNI_INSTRUCT.md §3), in EDM denoiser units.

Every diffusion network here is a copy of a VP teacher's network ``forward(x_t, t, cond)``
(ε-, v- or x0-prediction on ``x_t = α_t·x_0 + σ_t·ε`` with integer timesteps). The divergence
core works in EDM (variance-exploding) units, x = x_0 + σ·n, so a network is called at the
timestep whose EDM noise level σ_t/α_t equals σ, on the input α_t·x: noise levels must lie on the
teacher's grid (:func:`snap_sigma`), because a VP network only knows its own timesteps.

- :class:`OneStepGenerator`: a copy of the teacher's network, trainable; G(z, c) = D_θ(σ_init·z; σ_init, c)
  as in the image code (σ_init = 2.5 by default, snapped to the grid). At initialisation it is the
  teacher's one-step denoiser from pure noise.
- :class:`TeacherDenoiser`: the frozen teacher, with classifier-free guidance D_u + s·(D_c − D_u).
- :class:`DistillFakeScore`: the fake score, a full trainable copy of the teacher, with the
  discriminator head on its bottleneck (the U-Net's mid block); the per-sample logit is the spatial
  mean of a 1×1 convolution of that map (§1.5). The head starts at zero, so r = exp(logit) = 1.

``bind(cond, ...)`` gives the ``denoise(x, σ)`` / ``log_ratio(x, σ)`` view that
:mod:`ui3d.guidance.denoiser` expects, with the condition fixed for one batch. A view is an
``nn.Module`` over its owner, so ``guidance.denoiser.frozen`` freezes the owner's parameters. It
keeps its last outputs: the fake-score turn asks for the logit of the x_t it just denoised (one
forward gives both), and the generator's adversarial term needs that logit with its graph.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from ui3d.diffusion import VPSchedule

PREDICTIONS = ("epsilon", "v_prediction", "sample")


def snap_sigma(schedule: VPSchedule, sigma: Tensor) -> Tensor:
    """The EDM noise levels of the teacher's timesteps nearest (in log σ) to ``sigma``."""
    return schedule.edm_sigma(schedule.timestep_for_edm_sigma(sigma)).to(sigma)


def vp_denoise(network: nn.Module, schedule: VPSchedule, prediction: str, x: Tensor, sigma: Tensor,
               cond: Tensor | None) -> Tensor:
    """D(x; σ) = x̂_0 from a VP network at the timestep of σ (x = x_0 + σ·n, σ [B] on the grid)."""
    t = schedule.timestep_for_edm_sigma(sigma.detach().reshape(-1).cpu()).to(x.device)
    alpha, sigma_vp = (v.to(x).view(-1, *([1] * (x.ndim - 1))) for v in schedule.alpha_sigma(t))
    x_t = alpha * x
    out = network(x_t, t, cond)
    if prediction == "epsilon":
        return (x_t - sigma_vp * out) / alpha
    if prediction == "v_prediction":
        return alpha * x_t - sigma_vp * out
    if prediction == "sample":
        return out
    raise ValueError(f"unknown prediction type '{prediction}' (choices: {', '.join(PREDICTIONS)})")


def _train_only_unet(network: nn.Module) -> nn.Module:
    """Trainable U-Net, frozen everything else (the built-in teacher's text encoder)."""
    network.requires_grad_(False)
    getattr(network, "unet", network).requires_grad_(True)
    return network


class BoundDenoiser(nn.Module):
    """``denoise(x, σ)`` and ``log_ratio(x, σ)`` of an owner with the batch's condition bound."""

    def __init__(self, owner: nn.Module, cond: Tensor | None, uncond: Tensor | None = None, scale: float = 1.0):
        super().__init__()
        self.owner = owner
        self.cond, self.uncond, self.scale = cond, uncond, scale
        self._last_x: Tensor | None = None
        self.last_denoised: Tensor | None = None
        self.last_logit: Tensor | None = None

    def denoise(self, x: Tensor, sigma: Tensor) -> Tensor:
        denoised, logit = self.owner.denoise_and_logit(x, sigma, self.cond, self.uncond, self.scale)
        self._last_x, self.last_denoised, self.last_logit = x, denoised, logit
        return denoised

    def log_ratio(self, x: Tensor, sigma: Tensor) -> Tensor:
        if x is self._last_x and self.last_logit is not None:
            return self.last_logit
        _, logit = self.owner.denoise_and_logit(x, sigma, self.cond, self.uncond, self.scale)
        if logit is None:
            raise ValueError("this network has no discriminator head")
        return logit


class TeacherDenoiser(nn.Module):
    """The frozen teacher in EDM units, with classifier-free guidance on the denoised output."""

    def __init__(self, network: nn.Module, schedule: VPSchedule, prediction: str = "epsilon"):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction type '{prediction}' (choices: {', '.join(PREDICTIONS)})")
        self.network = network.eval().requires_grad_(False)
        self.schedule, self.prediction = schedule, prediction

    def denoise_and_logit(self, x: Tensor, sigma: Tensor, cond: Tensor | None, uncond: Tensor | None = None,
                          scale: float = 1.0) -> tuple[Tensor, None]:
        if uncond is None or scale == 1.0:
            return vp_denoise(self.network, self.schedule, self.prediction, x, sigma, cond), None
        b = x.shape[0]
        both = vp_denoise(self.network, self.schedule, self.prediction, torch.cat([x, x]), torch.cat([sigma, sigma]),
                          torch.cat([uncond.expand(b, *uncond.shape[1:]), cond]))
        d_u, d_c = both.chunk(2)
        return d_u + scale * (d_c - d_u), None

    def bind(self, cond: Tensor | None, uncond: Tensor | None = None, scale: float = 1.0) -> BoundDenoiser:
        return BoundDenoiser(self, cond, uncond, scale)


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
        self.network = _train_only_unet(copy.deepcopy(network)).train()
        self.schedule, self.prediction = schedule, prediction
        mid, channels = _bottleneck_module(self.network)
        self.discriminator_head = nn.Conv2d(channels, 1, kernel_size=1)
        nn.init.zeros_(self.discriminator_head.weight)
        nn.init.zeros_(self.discriminator_head.bias)
        self._bottleneck: Tensor | None = None
        mid.register_forward_hook(self._keep_bottleneck)

    def _keep_bottleneck(self, module, inputs, output) -> None:
        self._bottleneck = output[0] if isinstance(output, tuple) else output

    def denoise_and_logit(self, x: Tensor, sigma: Tensor, cond: Tensor | None, uncond: Tensor | None = None,
                          scale: float = 1.0) -> tuple[Tensor, Tensor]:
        """D_ψ(x; σ, c) and the per-sample logit of log(p_σ/q_σ) from the same forward (no CFG)."""
        try:
            denoised = vp_denoise(self.network, self.schedule, self.prediction, x, sigma, cond)
            logit = self.discriminator_head(self._bottleneck.float()).flatten(1).mean(1)
        finally:
            self._bottleneck = None
        return denoised, logit

    def bind(self, cond: Tensor | None) -> BoundDenoiser:
        return BoundDenoiser(self, cond)


class OneStepGenerator(nn.Module):
    """G_θ(z, c) = D_θ(σ_init·z; σ_init, c): one evaluation of a copy of the teacher's network."""

    def __init__(self, network: nn.Module, schedule: VPSchedule, prediction: str = "epsilon",
                 sigma_init: float = 2.5, channels: int = 3, resolution: int = 32):
        super().__init__()
        if sigma_init <= 0:
            raise ValueError(f"sigma_init must be positive, got {sigma_init}")
        self.network = _train_only_unet(copy.deepcopy(network)).train()
        self.schedule, self.prediction = schedule, prediction
        self.sigma_init = float(snap_sigma(schedule, torch.tensor([float(sigma_init)]))[0])
        self.shape = (channels, resolution, resolution)

    def sample_latent(self, n: int, generator: torch.Generator) -> Tensor:
        return torch.randn(n, *self.shape, generator=generator)

    def forward(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        sigma = torch.full((z.shape[0],), self.sigma_init, device=z.device, dtype=z.dtype)
        return vp_denoise(self.network, self.schedule, self.prediction, self.sigma_init * z, sigma, cond)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]
