"""Guidance: the two turns of §3 over the divergence core, for every producer of x.

A render of a 3D scene, a one-step generator's image and a 2-D generator's point all meet the same
object: a frozen teacher (:class:`~ui3d.teachers.protocol.ScoreModel`), a fake score
(:class:`~ui3d.guidance.fake.FakeScore`, or none for SDS) and a :class:`~ui3d.guidance.config.GuidanceConfig`.
Both networks answer in ε form at x_t = α·x + σ·ε (:class:`~ui3d.diffusion.Noise`; VP levels for
text-to-3D, EDM levels with α = 1 for distillation), so the score terms, weights, ratio and losses
are assembled here once.

- :meth:`Guidance.generator_loss`: gradients reach x only; the teacher's and fake score's parameters
  are frozen for the turn. It also returns the teacher's x̂_0 and, when asked, the fake score's
  logit with its graph (SiDA's adversarial term).
- :meth:`Guidance.fake_score_loss`: denoising score matching on detached samples, plus the
  discriminator's BCE against real samples at the same noise (§1.5).

The callers draw the noise (with their own generator and order of draws) and pass it in.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import Tensor, nn

from ui3d.diffusion import Noise, NoiseLevel, edm_loss_weight, eps_to_x0, per_sample
from ui3d.divergence import (
    LossOutput, NoiseTable, PaperCodeOptions, by_parts_weight, denoising_loss, discriminator_loss, generator_loss,
    get_divergence, loss_weight, ScoreTerms, ratio_from_logits, score_terms_from_eps,
)
from ui3d.guidance.config import GuidanceConfig
from ui3d.guidance.fake.base import FakeScore
from ui3d.teachers.guided import GuidedTeacher
from ui3d.teachers.protocol import Conditioning, ScoreModel, Teacher

DenoisingWeight = Callable[[NoiseLevel], Tensor | float]  # per-sample weight of ‖ε̂_q − ε‖²
LINEAR_MODES = ("static", "by_parts")  # losses linear in the detached scores: no graph through the networks


def eps_mse(level: NoiseLevel) -> float:
    """Stable Diffusion's ε-MSE: weight 1 at every timestep (text-to-3D's LoRA)."""
    return 1.0


@dataclass(frozen=True)
class EDMDenoisingWeight:
    """EDM's λ(σ) = (σ² + σ_d²)/(σ·σ_d)² on the x̂_0 error, written on the ε error: λ·σ² (α = 1)."""

    sigma_data: float

    def __call__(self, level: NoiseLevel) -> Tensor:
        sigma = level.edm_sigma
        return edm_loss_weight(sigma, self.sigma_data) * sigma**2


@contextmanager
def frozen(module: object) -> Iterator[None]:
    """Temporarily stop gradients into an nn.Module's parameters (inputs stay differentiable)."""
    params = [p for p in module.parameters() if p.requires_grad] if isinstance(module, nn.Module) else []
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


@dataclass
class GeneratorTurn(LossOutput):
    """The generator's loss (a :class:`~ui3d.divergence.LossOutput`) and what the caller may build on it."""

    teacher_x0: Tensor | None = None  # the teacher's x̂_0 at x_t, detached
    logit: Tensor | None = None  # the fake score's logit at x_t, with graph when the turn was adversarial


@dataclass
class FakeTurnLosses:
    denoising: LossOutput
    discriminator: LossOutput | None

    @property
    def total(self) -> Tensor:
        return self.denoising.loss + (self.discriminator.loss if self.discriminator is not None else 0.0)


class Guidance:
    """The divergence core + a teacher + a fake score (None: SDS's Dirac) + the ratio from its logit.

    ``ratio_available``: whether the fake score's discriminator is trained against real samples; when
    it is not, r = 1 exactly (an untrained head must never weight the samples)."""

    def __init__(self, cfg: GuidanceConfig, teacher: ScoreModel, fake: FakeScore | None = None,
                 denoising_weight: DenoisingWeight = eps_mse, ratio_available: bool = True):
        if (cfg.fake_score == "noise") != (fake is None):
            needs = "takes no" if fake is not None else "needs a"
            raise ValueError(f"fake_score '{cfg.fake_score}' {needs} fake score")
        self.cfg, self.teacher, self.fake, self.denoising_weight = cfg, teacher, fake, denoising_weight
        if not cfg.cfg_in_y and not hasattr(teacher, "unguided"):
            raise ValueError("guidance.cfg_in_y=false: this teacher has no CFG to take out of the score terms")
        self.cfg_apart = not cfg.cfg_in_y  # CFG a separate static push; the score terms see the unguided teacher
        self.score_teacher = teacher.unguided() if self.cfg_apart else teacher
        self.divergence = get_divergence(cfg.divergence)
        self.uses_ratio = cfg.uses_ratio and ratio_available
        self.paper_code = PaperCodeOptions(cfg.sid_alpha, cfg.fisher_weight)

    @classmethod
    def from_teacher(cls, cfg: GuidanceConfig, teacher: Teacher, fake: FakeScore | None = None,
                     ratio_available: bool = True) -> "Guidance":
        """Text-to-3D: a :class:`~ui3d.teachers.protocol.Teacher` with the config's CFG and Perp-Neg."""
        if cfg.guidance_scale is None:
            raise ValueError("guidance_scale is None: set the teacher's CFG (TextTo3DConfig does, from its teacher)")
        perp_neg_weight = cfg.perp_neg_weight if cfg.perp_neg else None
        return cls(cfg, GuidedTeacher(teacher, cfg.guidance_scale, perp_neg_weight), fake,
                   ratio_available=ratio_available)

    def generator_loss(self, x: Tensor, noise: Noise, cond: Conditioning = Conditioning(),
                       adversarial: bool = False, levels: NoiseTable | None = None) -> GeneratorTurn:
        """The loss whose gradient drives the producer of x (with graph) at x_t = α·x + σ·ε.

        ``levels``: the noise levels the caller's sampler draws from, needed by mode ``by_parts``."""
        cfg = self.cfg
        if cfg.mode == "by_parts" and levels is None:
            raise ValueError("mode 'by_parts' needs the sampler's noise levels (levels=)")
        x_t = noise.apply(x)
        # Static and by-parts modes use only detached scores: skip the graph through the networks
        # (memory, time), unless the adversarial term needs the logit's.
        graph = (cfg.mode not in LINEAR_MODES or adversarial) and torch.is_grad_enabled()
        net_input = x_t if graph else x_t.detach()
        with frozen(self.teacher), frozen(self.fake), torch.set_grad_enabled(graph):
            eps_y = self.score_teacher.predict(net_input, noise.level, cond)
            if self.fake is None:
                eps_q, logit = noise.eps, None  # SDS: the exact ε̂ of a Dirac at x is the drawn noise
            else:
                want_logit = self.uses_ratio or adversarial
                eps_q, logit = self.fake.predict(net_input, noise.level, cond, with_logit=want_logit)
        ratio: Tensor | float = 1.0
        if self.uses_ratio:
            ratio = ratio_from_logits(logit, max_abs_logit=cfg.max_abs_logit, self_normalize=cfg.self_normalize_ratio)
        eps_p = eps_y
        if self.cfg_apart:
            with torch.no_grad():
                eps_p = self.teacher.predict(x_t.detach(), noise.level, cond)
        alpha, sigma = per_sample(noise.level.alpha, x), per_sample(noise.level.sigma, x)
        teacher_x0 = eps_to_x0(x_t, eps_p, alpha, sigma).detach()
        terms = score_terms_from_eps(x_t, eps_y, eps_q, noise.eps, sigma)
        weight = loss_weight(cfg.weighting, cfg.mode, alpha, sigma, x, teacher_x0)
        divergence_weight = None
        if cfg.mode == "by_parts":
            divergence_weight, weight = weight, by_parts_weight(cfg.weighting, levels, alpha, sigma, x, teacher_x0)
        out = generator_loss(terms, self.divergence, mode=cfg.mode, ratio=ratio, weight=weight,
                             paper_code=self.paper_code, divergence_weight=divergence_weight)
        if self.cfg_apart:  # in the linear modes the push takes the mode's own weight, else static's
            push_weight = weight if cfg.mode in LINEAR_MODES else loss_weight(cfg.weighting, "static", alpha, sigma,
                                                                                 x, teacher_x0)
            out = self._with_cfg_push(out, x_t, (eps_y - eps_p).detach() / sigma, ratio, push_weight)
        return GeneratorTurn(out.loss, out.per_sample, out.nonfinite, out.divergence, teacher_x0, logit)

    def _with_cfg_push(self, out: LossOutput, x_t: Tensor, y_cfg: Tensor, ratio: Tensor | float,
                       weight: Tensor) -> LossOutput:
        """``out`` plus the part of y that CFG adds, y_cfg = (ε̂_cond − ε̂_guided)/σ, in static mode's
        direction with ``weight`` (static's, or by_parts'): so in those modes the sum is the guided
        teacher's loss exactly."""
        push = generator_loss(ScoreTerms(x_t, y_cfg, torch.zeros_like(y_cfg)), self.divergence, mode="static",
                              ratio=ratio, weight=weight)
        per_sample = out.per_sample + push.per_sample
        return LossOutput(per_sample.mean(), per_sample, out.nonfinite + push.nonfinite, out.divergence)

    def fake_score_loss(self, x: Tensor, noise: Noise, cond: Conditioning = Conditioning(),
                        x_real: Tensor | None = None) -> FakeTurnLosses:
        """Denoising score matching on detached x; with ``x_real`` (teacher samples, data) also the
        discriminator's BCE at the same noise, unweighted.

        The BCE has no λ_EDM(σ): in the 2-D benchmark (≈ 400× larger at σ = 0.05 than at σ = 8) that
        weight made the ratio over-confident at large σ."""
        if self.fake is None:
            raise ValueError("fake_score 'noise' has nothing to train")
        x = x.detach()
        fake = self.fake.predict(noise.apply(x), noise.level, cond, with_logit=x_real is not None)
        dsm = denoising_loss(fake.eps.float(), noise.eps.float(), self.denoising_weight(noise.level))
        disc = None
        if x_real is not None:
            real = self.fake.predict(noise.apply(x_real.to(x)), noise.level, cond, with_logit=True)
            disc = discriminator_loss(real.logit, fake.logit)
        return FakeTurnLosses(dsm, disc)

    def discriminator_loss(self, x: Tensor, noise: Noise, x_real: Tensor, cond: Conditioning = Conditioning()) -> Tensor:
        """The discriminator's BCE alone (generator samples ``x`` detached against ``x_real`` at the same
        noise): the extra updates that keep the ratio up with a fast-moving generator."""
        fake = self.fake.predict(noise.apply(x.detach()), noise.level, cond).logit
        real = self.fake.predict(noise.apply(x_real.to(x)), noise.level, cond).logit
        return discriminator_loss(real, fake).loss
