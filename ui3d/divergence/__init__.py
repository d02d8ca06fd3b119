"""The Uni-Instruct divergence core: pure torch, no models (DESIGN.md: imports only torch)."""

from .by_parts import NoiseTable, by_parts_multipliers
from .losses import (
    MODES,
    LossOutput,
    PaperCodeOptions,
    ScoreTerms,
    denoising_loss,
    discriminator_loss,
    generator_adversarial_loss,
    generator_loss,
    ratio_from_logits,
    score_terms_from_eps,
    score_terms_from_scores,
    score_terms_from_x0,
)
from .table import DIVERGENCE_NAMES, DIVERGENCES, Divergence, alpha_divergence, get_divergence
from .weighting import WEIGHTINGS, by_parts_weight, loss_weight, time_weight

__all__ = [
    "MODES", "LossOutput", "PaperCodeOptions", "ScoreTerms", "denoising_loss", "discriminator_loss",
    "generator_adversarial_loss", "generator_loss", "ratio_from_logits", "score_terms_from_eps",
    "score_terms_from_scores", "score_terms_from_x0", "DIVERGENCE_NAMES", "DIVERGENCES", "Divergence",
    "alpha_divergence", "get_divergence", "WEIGHTINGS", "loss_weight", "time_weight", "by_parts_weight",
    "NoiseTable", "by_parts_multipliers",
]
