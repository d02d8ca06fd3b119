"""Diffusion conventions: schedules, parametrisation conversions, timestep samplers."""

from .conversions import (
    eps_to_score, eps_to_v, eps_to_x0, score_to_eps, v_to_eps, v_to_x0, x0_to_eps, x0_to_score,
)
from .schedules import (
    EDMPreconditioning, VPSchedule, edm_loss_weight, edm_preconditioning, karras_sigma_from_t, karras_sigmas,
)
from .timesteps import LogNormalSigma, LogUniformSigma, SiDSigma, UniformTimesteps
