"""The one guidance config of text-to-3D, image distillation and the 2-D benchmark.

Shared fields (every system): ``divergence``, ``mode``, ``weighting``, ``ratio``, ``max_abs_logit``,
``self_normalize_ratio``, ``sid_alpha``, ``fisher_weight``, ``cfg_in_y``. The class defaults are the distillation
ones (``weighting: mean_abs``); text-to-3D starts from a preset of ``GUIDANCE_PRESETS``
(``weighting: sds``).

Text-to-3D only (:data:`TEXT_TO_3D_ONLY`): the teacher's CFG and Perp-Neg, the LoRA fake score and its
camera dropout, and the timestep range. Image distillation has its own top-level ``guidance_scale``
and noise-level samplers, the 2-D benchmark its own σ range; both refuse these fields when set
(:func:`check_text_to_3d_fields_unset`) rather than ignore them.

SDS, VSD and Uni-Instruct are configurations, not code paths: SDS = static reverse KL with the
noise as fake score; VSD = static reverse KL with a LoRA fake score; Uni-Instruct = forward KL (any
f with ``divergence``) with a LoRA fake score and its discriminator for r.

The 3D Uni-Instruct preset uses the core's ``static`` mode (the VSD direction weighted per sample
by the divergence's h(r)), not ``exact``: ``exact`` turned the built-in cube into a view-filling fog
within 25 steps. The cause is the exact surrogate's DI term 2r̄h'(r̄)⟨ȳ, c̄⟩·⟨ȳ, x_t⟩, which is right
only for an exact fake score (then E[⟨y, c⟩ | x_t] = 0). A learned fake score lags; with
D_f = (1−κ)D_p + κD_q, E⟨y, c⟩ = κ(1−κ)·E‖s_p − s_q‖², a bias that no batch size removes
(``tests/divergence/test_fake_lag.py``). Measured on the cube after 40 steps of this preset
(``python -m systems.measure_terms``, 8 batches): the DI term's gradient is 709× (median; 143–21 000×)
the static one, and the mean ⟨ȳ, c̄⟩ is −134 where it should be 0. ``mode=exact`` stays available
(``guidance.mode=exact``); the 2-D preset runs ``exact``, the built-in image preset reverse KL
``by_parts`` (measured better than ``exact`` there, docs/benchmarks.md).

``mode=by_parts`` computes the exact gradient without that term (Theorem A integrated by parts over the
noise level, ``ui3d/divergence/by_parts.py``): forward KL then makes the cube, torus and owl, but on
11 prompts × 3 seeds it is 0.746 against this static preset's 0.776 (the gray house a roof), so the
preset stays static (docs/benchmarks.md, "Theorem B by parts").
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Literal

from ui3d.diffusion import UniformTimesteps
from ui3d.divergence import get_divergence
from ui3d.divergence.table import depends_on_ratio


@dataclass(frozen=True)
class GuidanceConfig:
    divergence: str = "fkl"
    mode: Literal["exact", "exact_cv", "by_parts", "sim_sg", "static", "paper_code"] = "exact"
    weighting: Literal["none", "sds", "mean_abs"] = "mean_abs"
    ratio: Literal["none", "discriminator"] = "discriminator"  # r from the fake score's logit, or r = 1
    max_abs_logit: float = 5.0  # clamp of log r
    self_normalize_ratio: bool = True  # r ← r / mean_batch(r) (f-distill's variance reduction)
    sid_alpha: float = 1.0  # mode paper_code only
    fisher_weight: float = 0.0  # mode paper_code only
    # False: the score terms (y, c and the exact modes' coupling and Fisher terms) see the teacher without
    # CFG, and its CFG (and Perp-Neg) push enters as a separate static term, h(r̄)-weighted like static
    # mode's (identical to True in static mode). With it reverse KL `exact` keeps white objects in 3D;
    # forward KL `exact` still fogs (docs/benchmarks.md, "What the fake misses: the CFG direction").
    cfg_in_y: bool = True
    # --- text-to-3D only
    guidance_scale: float | None = None  # teacher CFG; None: the teacher's own (teachers.loading.teacher_guidance_scale)
    perp_neg: bool = False  # Perp-Neg against the opposite view's prompt (fights Janus faces)
    perp_neg_weight: float = 1.0
    fake_score: Literal["noise", "lora"] = "lora"
    t_min: float = 0.02
    t_max: float = 0.98
    t_max_final: float | None = None  # annealed maximum (ProlificDreamer: 0.5 after 5000 steps)
    anneal_start: int = 0
    anneal_end: int = 0
    lora_rank: int = 4
    camera_dropout: float = 0.1

    def __post_init__(self) -> None:
        from ui3d.config import FieldValueError, check_ranges

        get_divergence(self.divergence)  # fail at load time with the list of names
        self.timesteps()  # validates the range: 0 <= t_min < t_max (and t_max_final) <= 1
        # the LoRA's rank sets its parameter count; the weights are scales, negative ones invert their terms
        check_ranges(self, camera_dropout=(0, 1), perp_neg_weight=(0, None), fisher_weight=(0, None),
                     lora_rank=(1, 256), anneal_start=(0, None))
        if self.guidance_scale is not None:
            check_ranges(self, guidance_scale=(0, None))
        if not self.max_abs_logit > 0:
            raise FieldValueError("max_abs_logit", f"expected > 0 (the clamp of log r), got {self.max_abs_logit}")
        if self.fake_score == "noise" and self.ratio != "none":
            raise ValueError("ratio 'discriminator' needs fake_score 'lora' (the discriminator is its head)")

    def timesteps(self) -> UniformTimesteps:
        return UniformTimesteps(self.t_min, self.t_max, self.t_max_final, self.anneal_start, self.anneal_end)

    @property
    def uses_ratio(self) -> bool:
        """Whether the generator turn weights by r, so the fake score's discriminator must train."""
        return self.ratio == "discriminator" and depends_on_ratio(get_divergence(self.divergence))


TEXT_TO_3D_ONLY = ("guidance_scale", "perp_neg", "perp_neg_weight", "fake_score", "t_min", "t_max", "t_max_final",
                   "anneal_start", "anneal_end", "lora_rank", "camera_dropout")


def check_text_to_3d_fields_unset(cfg: GuidanceConfig, system: str, instead: dict[str, str] | None = None) -> None:
    """A ValueError naming the first text-to-3D-only field that differs from its default, which
    ``system`` would otherwise silently ignore; ``instead`` names the system's own field for one."""
    defaults = {f.name: f.default for f in fields(GuidanceConfig)}
    for name in TEXT_TO_3D_ONLY:
        if getattr(cfg, name) != defaults[name]:
            hint = f"; set {instead[name]} instead" if instead and name in instead else ""
            raise ValueError(f"guidance.{name} is used by text-to-3D only; {system} does not read it{hint}")


# weighting "sds": threestudio's σ³/α (divergence/weighting.py), written out since the class default is mean_abs.
# SDS keeps DreamFusion's CFG 100 (its Dirac fake score needs it); VSD and Uni-Instruct take the teacher's own
# CFG (guidance_scale None): 7.5 for Stable Diffusion as in ProlificDreamer, 2.5 for the built-in teacher,
# whose samples CFG inflates (docs/benchmarks.md, "Teacher CFG in text-to-3D").
GUIDANCE_PRESETS: dict[str, GuidanceConfig] = {
    "sds": GuidanceConfig(divergence="rkl", mode="static", weighting="sds", guidance_scale=100.0, fake_score="noise",
                          ratio="none"),
    "vsd": GuidanceConfig(divergence="rkl", mode="static", weighting="sds", fake_score="lora", ratio="none"),
    "uni-instruct": GuidanceConfig(divergence="fkl", mode="static", weighting="sds", fake_score="lora"),
}


def guidance_preset(name: str, **overrides) -> GuidanceConfig:
    if name not in GUIDANCE_PRESETS:
        raise ValueError(f"unknown guidance '{name}' (choices: {', '.join(GUIDANCE_PRESETS)})")
    return replace(GUIDANCE_PRESETS[name], **overrides)
