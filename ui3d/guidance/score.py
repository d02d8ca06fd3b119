"""ScoreGuidance: the divergence core + a frozen ε-prediction teacher + a fake score + a ratio
estimator + a timestep sampler, in the VP / ε units of Stable Diffusion (UNI_INSTRUCT.md §4, §5).

SDS, VSD and Uni-Instruct are configurations (``GUIDANCE_PRESETS``), not code paths:
SDS = static reverse KL with the noise as fake score; VSD = static reverse KL with a LoRA fake
score; Uni-Instruct = forward KL (any f with ``divergence``) with a LoRA fake score and its
discriminator for r. CFG follows diffusers: ε = ε_u + s·(ε_c − ε_u).

The 3D Uni-Instruct preset uses the core's ``static`` mode (the VSD direction weighted per sample
by the divergence's h(r)), not ``exact``. Measured on the built-in cube (CFG 7.5): ``exact`` turned
the scene into a view-filling fog within 25 steps, with and without the ratio. Its SIM term
differentiates ‖s_p^cfg − s_q‖² through the networks' inputs, and with CFG on the teacher only,
the easiest way to shrink it is an image where the conditional and unconditional scores agree.
``mode=exact`` stays available (``guidance.mode=exact``); DESIGN's "exact by default" holds for
the 2-D and image distillation, where no CFG is applied.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import Tensor

from ui3d.diffusion import UniformTimesteps, eps_to_x0
from ui3d.divergence import (
    LossOutput, PaperCodeOptions, denoising_loss, discriminator_loss, generator_loss, get_divergence, loss_weight,
    ratio_from_logits, score_terms_from_eps,
)
from ui3d.divergence.table import depends_on_ratio
from ui3d.guidance.denoiser import FakeTurnLosses, frozen
from ui3d.guidance.lora import LoRAFakeScore
from ui3d.teachers.protocol import Teacher, guided_eps


@dataclass(frozen=True)
class ScoreGuidanceConfig:
    divergence: str = "fkl"
    mode: Literal["exact", "sim_sg", "static", "paper_code"] = "exact"
    weighting: Literal["none", "sds", "mean_abs"] = "sds"
    guidance_scale: float = 7.5
    perp_neg: bool = False  # Perp-Neg against the opposite view's prompt (fights Janus faces)
    perp_neg_weight: float = 1.0
    fake_score: Literal["noise", "lora"] = "lora"
    ratio: Literal["none", "discriminator"] = "discriminator"
    max_abs_logit: float = 5.0
    self_normalize_ratio: bool = True
    t_min: float = 0.02
    t_max: float = 0.98
    t_max_final: float | None = None  # annealed maximum (ProlificDreamer: 0.5 after 5000 steps)
    anneal_start: int = 0
    anneal_end: int = 0
    lora_rank: int = 4
    camera_dropout: float = 0.1
    sid_alpha: float = 1.0  # mode paper_code only
    fisher_weight: float = 0.0  # mode paper_code only

    def __post_init__(self) -> None:
        get_divergence(self.divergence)
        self.timesteps()  # validates the range
        if self.fake_score == "noise" and self.ratio != "none":
            raise ValueError("ratio 'discriminator' needs fake_score 'lora' (the discriminator is its head)")

    def timesteps(self) -> UniformTimesteps:
        return UniformTimesteps(self.t_min, self.t_max, self.t_max_final, self.anneal_start, self.anneal_end)


GUIDANCE_PRESETS: dict[str, ScoreGuidanceConfig] = {
    "sds": ScoreGuidanceConfig(divergence="rkl", mode="static", guidance_scale=100.0, fake_score="noise", ratio="none"),
    "vsd": ScoreGuidanceConfig(divergence="rkl", mode="static", guidance_scale=7.5, fake_score="lora", ratio="none"),
    "uni-instruct": ScoreGuidanceConfig(divergence="fkl", mode="static", guidance_scale=7.5, fake_score="lora"),
}


def guidance_preset(name: str, **overrides) -> ScoreGuidanceConfig:
    if name not in GUIDANCE_PRESETS:
        raise ValueError(f"unknown guidance '{name}' (choices: {', '.join(GUIDANCE_PRESETS)})")
    return replace(GUIDANCE_PRESETS[name], **overrides)


def _bcast(v: Tensor, like: Tensor) -> Tensor:
    return v.to(like).view(-1, *([1] * (like.ndim - 1)))


class ScoreGuidance:
    def __init__(self, cfg: ScoreGuidanceConfig, teacher: Teacher, fake: LoRAFakeScore | None = None):
        if (cfg.fake_score == "lora") != (fake is not None):
            raise ValueError(f"fake_score '{cfg.fake_score}' {'needs' if fake is None else 'takes no'} LoRA fake score")
        self.cfg, self.teacher, self.fake = cfg, teacher, fake
        self.divergence = get_divergence(cfg.divergence)
        self.timesteps = cfg.timesteps()
        self.uses_ratio = cfg.ratio == "discriminator" and depends_on_ratio(self.divergence)

    def _noise(self, x: Tensor, step: int, generator: torch.Generator):
        t = self.timesteps.sample(x.shape[0], self.teacher.schedule.num_train_timesteps, generator, step)
        alpha, sigma = (_bcast(v, x) for v in self.teacher.schedule.alpha_sigma(t))
        eps = torch.randn(x.shape, generator=generator).to(x)
        return t, alpha, sigma, eps

    def generator_loss(self, x: Tensor, cond: Tensor, uncond: Tensor, step: int, generator: torch.Generator,
                       camera: Tensor | None = None, negative: Tensor | None = None) -> LossOutput:
        """The loss whose gradient drives the scene; x is the teacher-space render (latents/pixels) with graph.
        ``negative``: Perp-Neg embeddings per sample (used when cfg.perp_neg)."""
        cfg = self.cfg
        t, alpha, sigma, eps = self._noise(x, step, generator)
        x_t = alpha * x + sigma * eps
        # Static mode uses only detached scores: skip the graph through the networks (memory, time).
        net_input = x_t if cfg.mode != "static" else x_t.detach()
        with frozen(self.fake), torch.set_grad_enabled(cfg.mode != "static" and torch.is_grad_enabled()):
            negative = negative if cfg.perp_neg else None
            eps_p = guided_eps(self.teacher, net_input, t, cond, uncond, cfg.guidance_scale, negative, cfg.perp_neg_weight)
            ratio: Tensor | float = 1.0
            if self.fake is None:
                eps_q = eps  # SDS: the exact score of a Dirac at x
            else:
                eps_q, logit = self.fake(net_input, t, cond, camera)
                if self.uses_ratio:
                    ratio = ratio_from_logits(logit, max_abs_logit=cfg.max_abs_logit,
                                              self_normalize=cfg.self_normalize_ratio)
        terms = score_terms_from_eps(x_t, eps_p, eps_q, eps, sigma)
        x0_teacher = eps_to_x0(x_t, eps_p, alpha, sigma) if cfg.weighting == "mean_abs" else None
        weight = loss_weight(cfg.weighting, cfg.mode, alpha, sigma, x, x0_teacher)
        options = PaperCodeOptions(cfg.sid_alpha, cfg.fisher_weight)
        return generator_loss(terms, self.divergence, mode=cfg.mode, ratio=ratio, weight=weight, paper_code=options)

    def fake_score_loss(self, x: Tensor, cond: Tensor, generator: torch.Generator, camera: Tensor | None = None,
                        x_real: Tensor | None = None) -> FakeTurnLosses:
        """ε-MSE of the LoRA on detached renders at t ~ U{0..T−1}; with ``x_real`` (teacher samples) also the
        discriminator's BCE at the same t and noise (§1.5)."""
        if self.fake is None:
            raise ValueError("fake_score 'noise' has nothing to train")
        x = x.detach()
        t = torch.randint(0, self.teacher.schedule.num_train_timesteps, (x.shape[0],), generator=generator)
        alpha, sigma = (_bcast(v, x) for v in self.teacher.schedule.alpha_sigma(t))
        eps = torch.randn(x.shape, generator=generator).to(x)
        eps_q, logit_fake = self.fake(alpha * x + sigma * eps, t, cond, camera)
        dsm = denoising_loss(eps_q.float(), eps.float())
        disc = None
        if x_real is not None and self.uses_ratio:
            _, logit_real = self.fake(alpha * x_real.to(x) + sigma * eps, t, cond, camera)
            disc = discriminator_loss(logit_real, logit_fake)
        return FakeTurnLosses(dsm, disc)
