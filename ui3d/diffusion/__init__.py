"""Diffusion conventions: schedules, parametrisation conversions, timestep samplers, noise draws."""

from .conversions import (
    PREDICTIONS, eps_to_score, eps_to_v, eps_to_x0, prediction_to_eps, prediction_to_x0, score_to_eps, v_to_eps,
    v_to_x0, vp_network_eps, vp_network_x0, x0_to_eps, x0_to_score,
)
from .noise import Noise, NoiseLevel, per_sample, sample_vp_noise
from .schedules import (
    EDMPreconditioning, VPSchedule, edm_loss_weight, edm_preconditioning, karras_sigma_from_t, karras_sigmas,
    snap_sigma,
)
from .timesteps import ALL_TIMESTEPS, LogNormalSigma, LogUniformSigma, SiDSigma, UniformTimesteps
