"""Exact teachers: isotropic Gaussian mixtures in any dimension, with closed-form noisy scores.

x_t = α·x_0 + σ·ε turns a component N(μ_k, s_k²·I) into N(α·μ_k, (α²s_k² + σ²)·I); α = 1 is the
VE/EDM form. A mixture with zero stds is an empirical distribution (a set of samples, e.g. the
renders of one caption), whose Gaussian-smoothed score is exact at every σ > 0.
These are the oracles of the tests and benchmarks (UNI_INSTRUCT.md §6).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from ui3d.world.render import Background


@dataclass(frozen=True)
class GaussianMixture:
    """Σ_k w_k N(μ_k, s_k²·I): means [K, D], stds [K], weights [K] summing to 1."""

    means: Tensor
    stds: Tensor
    weights: Tensor

    @staticmethod
    def create(means, stds, weights=None, dtype: torch.dtype = torch.float32) -> "GaussianMixture":
        """Validated constructor from lists or tensors; weights are normalised."""
        m = torch.as_tensor(means, dtype=dtype)
        if m.ndim != 2 or m.shape[0] == 0:
            raise ValueError(f"mixture means must be a non-empty list of points [[x, y, ...], ...], got shape {tuple(m.shape)}")
        s = torch.as_tensor(stds, dtype=dtype).reshape(-1)
        w = torch.ones(m.shape[0], dtype=dtype) if weights is None else torch.as_tensor(weights, dtype=dtype).reshape(-1)
        if not (len(s) == len(w) == len(m)):
            raise ValueError(f"mixture has {len(m)} means, {len(s)} stds and {len(w)} weights; they must match")
        if not torch.isfinite(m).all() or not torch.isfinite(s).all() or not torch.isfinite(w).all():
            raise ValueError("mixture means, stds and weights must be finite numbers")
        if (s < 0).any():
            raise ValueError(f"mixture stds must be >= 0, got {s.tolist()}")
        if (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"mixture weights must be >= 0 and sum to a positive number, got {w.tolist()}")
        return GaussianMixture(m, s, w / w.sum())

    @staticmethod
    def ring(n_modes: int = 8, radius: float = 4.0, std: float = 0.2, weights=(1, 1, 1, 1, 0.5, 0.5, 0.25, 0.25)) -> "GaussianMixture":
        """The §6.3 benchmark: modes on a circle with unequal weights."""
        angle = torch.arange(n_modes) * (2 * math.pi / n_modes)
        means = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
        return GaussianMixture.create(means, [std] * n_modes, list(weights)[:n_modes])

    @staticmethod
    def empirical(samples: Tensor) -> "GaussianMixture":
        """The uniform mixture of Diracs at the given samples [N, ...] (flattened to [N, D])."""
        flat = samples.detach().reshape(samples.shape[0], -1)
        n = flat.shape[0]
        return GaussianMixture(flat, flat.new_zeros(n), flat.new_full((n,), 1.0 / n))

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def to(self, device=None, dtype=None) -> "GaussianMixture":
        return GaussianMixture(*(t.to(device=device, dtype=dtype) for t in (self.means, self.stds, self.weights)))

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator, dtype=self.means.dtype)
        return self.means[k] + self.stds[k, None] * noise

    def _component_logits(self, x: Tensor, sigma, alpha) -> tuple[Tensor, Tensor]:
        """log(w_k·N(x; α·μ_k, v_k·I)) [B, K] and the variances v_k [B, K] at noise (α, σ)."""
        x = x.reshape(x.shape[0], -1)
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1)
        alpha = torch.as_tensor(alpha, dtype=x.dtype, device=x.device).reshape(-1, 1)
        var = alpha**2 * self.stds.to(x)[None, :] ** 2 + sigma**2  # [B or 1, K]
        sq = ((x[:, None, :] - alpha[:, :, None] * self.means.to(x)[None]) ** 2).sum(-1)  # [B, K]
        d = x.shape[1]
        logits = self.weights.to(x).log()[None] - 0.5 * (sq / var + d * (2 * math.pi * var).log())
        return logits, var.expand_as(logits)

    def log_prob(self, x: Tensor, sigma=0.0, alpha=1.0) -> Tensor:
        """log p_t(x) of the noisy marginal, [B]."""
        logits, _ = self._component_logits(x, sigma, alpha)
        return torch.logsumexp(logits, dim=1)

    def score(self, x: Tensor, sigma=0.0, alpha=1.0) -> Tensor:
        """∇_x log p_t(x), same shape as x; differentiable in x (the mixture itself is constant)."""
        shape = x.shape
        flat = x.reshape(shape[0], -1)
        logits, var = self._component_logits(flat, sigma, alpha)
        resp = torch.softmax(logits, dim=1) / var  # [B, K]
        alpha_t = torch.as_tensor(alpha, dtype=flat.dtype, device=flat.device).reshape(-1, 1)
        return (alpha_t * (resp @ self.means.to(flat)) - resp.sum(1, keepdim=True) * flat).reshape(shape)

    def denoise(self, x: Tensor, sigma, alpha=1.0) -> Tensor:
        """E[x_0 | x_t] = (x_t + σ²·∇log p_t)/α (Tweedie)."""
        shape = (-1,) + (1,) * (x.ndim - 1)
        s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(shape)
        a = torch.as_tensor(alpha, dtype=x.dtype, device=x.device).reshape(shape)
        return (x + s**2 * self.score(x, sigma, alpha)) / a


def log_density_ratio(p: GaussianMixture, q: GaussianMixture, x: Tensor, sigma=0.0, alpha=1.0) -> Tensor:
    """log(p_t(x)/q_t(x)) between two known mixtures at the same noise level, [B]."""
    return p.log_prob(x, sigma, alpha) - q.log_prob(x, sigma, alpha)


MAX_MIXTURE_MODES = 1000  # a mixture file's modes: the benchmark has 8; a million took 9 GB
MAX_MIXTURE_BYTES = 1 << 20


def load_mixture_json(path: str | Path) -> GaussianMixture:
    """Read {"means": [[x, y], ...], "stds": [...], "weights": [...]}; UserError names the problem."""
    from ui3d.errors import UserError

    path = Path(path)
    try:
        size = path.stat().st_size
        text = path.read_text(encoding="utf-8") if size <= MAX_MIXTURE_BYTES else None
    except OSError as err:
        raise UserError(f"cannot read mixture file '{path}': {err.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"mixture file '{path}' is not JSON: not UTF-8 text") from None
    if text is None:
        raise UserError(f"mixture file '{path}' is {size} bytes; at most {MAX_MIXTURE_BYTES} (up to {MAX_MIXTURE_MODES} modes)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"mixture file '{path}' is not JSON: {err.msg} at line {err.lineno}") from None
    except (ValueError, RecursionError) as err:  # a number of over 4300 digits; nesting too deep to parse
        reason = "nested too deeply" if isinstance(err, RecursionError) else str(err).split(";")[0]
        raise UserError(f"mixture file '{path}' is not JSON we can read: {reason}") from None
    if not isinstance(data, dict) or not {"means", "stds"} <= set(data):
        raise UserError(f"mixture file '{path}' must be an object with keys 'means', 'stds' and optional 'weights'")
    unknown = set(data) - {"means", "stds", "weights"}
    if unknown:
        raise UserError(f"mixture file '{path}' has unknown keys {sorted(unknown)}; expected 'means', 'stds', 'weights'")
    if isinstance(data["means"], list) and len(data["means"]) > MAX_MIXTURE_MODES:
        raise UserError(f"mixture file '{path}' has {len(data['means'])} modes; at most {MAX_MIXTURE_MODES}")
    try:
        return GaussianMixture.create(data["means"], data["stds"], data.get("weights"))
    except (ValueError, TypeError, RuntimeError, OverflowError) as err:  # OverflowError: a 400-digit number
        raise UserError(f"mixture file '{path}': {str(err).splitlines()[0]}") from None


# --- The exact teacher of the built-in world: Gaussian-smoothed renders of each caption -------------

def world_renders_mixture(
    caption: str, n: int = 64, resolution: int = 32, seed: int = 0, ss: int = 2, background: Background = 1.0
) -> GaussianMixture:
    """The uniform mixture of ``n`` renders of one built-in caption on ``background`` (a grey level or
    an RGB triple), pixels in [-1, 1] flattened to [n, 3·r·r] (channels first). Cameras are the
    dataset's random cameras; a caption with a view suffix keeps only cameras of that view. Raises
    ValueError for a prompt the world can't parse."""
    from ui3d.world.captions import parse_prompt
    from ui3d.world.dataset import render_pixels, view_cameras

    if n < 1:
        raise ValueError(f"n: expected >= 1 renders, got {n}")
    prompt = parse_prompt(caption)
    cams = view_cameras(prompt.view, n, resolution, torch.Generator().manual_seed(seed))
    return GaussianMixture.empirical(render_pixels(prompt.to_object(), cams, ss, background))


class _WorldOracle:
    """What both exact world teachers share: Stable Diffusion's VP schedule over pixels in [−1, 1] at
    ``resolution``, renders on ``background``. An oracle is exact only for renders on that same
    background: text-to-3D gives its scenes the oracle's (``ui3d.teachers.oracle.ORACLE_BACKGROUND``)."""

    clip_sample = True

    def __init__(self, resolution: int, ss: int, background: Background = 1.0):
        from ui3d.diffusion import VPSchedule

        self.resolution, self.ss, self.background = resolution, ss, background
        self.schedule = VPSchedule.scaled_linear()

    @property
    def alphas_cumprod(self) -> Tensor:
        return self.schedule.alphas_cumprod

    def encode(self, rgb: Tensor) -> Tensor:
        from ui3d.teachers.protocol import pixel_encode

        return pixel_encode(rgb, self.resolution)

    def decode(self, x: Tensor) -> Tensor:
        from ui3d.teachers.protocol import pixel_decode

        return pixel_decode(x)


class ExactWorldTeacher(_WorldOracle):
    """The closed-form teacher of the built-in world (the oracle of tests and benchmarks).

    p_t(x | caption) is the Gaussian-smoothed set of ``n_renders`` renders of the caption under
    the VP schedule of Stable Diffusion, so ε̂ = −σ_t·∇log p_t is exact. Same interface as
    :class:`ui3d.teachers.protocol.Teacher`: ``encode_prompts`` returns caption ids [B, 1] (long);
    the empty prompt is the pooled set of all renders of the captions encoded so far.
    """

    takes_camera = False

    def __init__(self, n_renders: int = 64, resolution: int = 32, seed: int = 0, ss: int = 2,
                 background: Background = 1.0):
        super().__init__(resolution, ss, background)
        self.n_renders, self.seed = n_renders, seed
        self._captions: list[str] = []
        self._mixtures: list[GaussianMixture] = []

    def mixture(self, caption: str) -> GaussianMixture:
        """The render mixture of a caption (rendered once, then cached); "" pools all of them."""
        if caption == "":
            if not self._mixtures:
                raise ValueError("the unconditional exact teacher needs at least one encoded caption first")
            return GaussianMixture.empirical(torch.cat([m.means for m in self._mixtures]))
        if caption not in self._captions:
            self._mixtures.append(
                world_renders_mixture(caption, self.n_renders, self.resolution, self.seed, self.ss, self.background)
            )
            self._captions.append(caption)
        return self._mixtures[self._captions.index(caption)]

    def encode_prompts(self, prompts) -> Tensor:
        if isinstance(prompts, str):
            prompts = [prompts]
        ids = []
        for p in prompts:
            if p != "":
                self.mixture(p)
            ids.append(self._captions.index(p) if p != "" else -1)
        return torch.tensor(ids, dtype=torch.long).reshape(-1, 1)

    def predict_eps(self, x_t: Tensor, t: Tensor, embeddings: Tensor, camera=None) -> Tensor:
        b = x_t.shape[0]
        t = torch.as_tensor(t).reshape(-1).expand(b).cpu()
        alpha, sigma = self.schedule.alpha_sigma(t)
        ids = embeddings.reshape(b).tolist()
        eps = torch.empty_like(x_t)
        for cid in dict.fromkeys(ids):
            sel = torch.tensor([i for i, c in enumerate(ids) if c == cid])
            mix = self.mixture(self._captions[cid] if cid >= 0 else "")
            s = sigma[sel].to(x_t)
            score = mix.score(x_t[sel].float(), s, alpha[sel].to(x_t))
            eps[sel] = (-s.view(-1, 1, 1, 1) * score).to(eps.dtype)
        return eps


class CameraMatchedWorldTeacher(_WorldOracle):
    """The oracle that also knows the camera: p(x | caption, camera) is the true render of the caption
    at that camera, so under the VP schedule p_t is one Gaussian around α_t·x_c and
    ε̂ = (x_t − α_t·x_c)/σ_t exactly. The unconditional prompt "" is the uniform mixture of the
    renders, at that camera, of every caption encoded so far.

    Beside :class:`ExactWorldTeacher` (text only: the renders of a view bucket, from other cameras) it
    splits text-to-3D's error: learned vs view-bucketed is the teacher's own error, view-bucketed vs
    camera-matched is what knowing the camera can buy, camera-matched vs a photometric fit is the
    guidance's and optimiser's. ``predict_eps`` needs the cameras of the batch (``takes_camera``).
    """

    takes_camera = True

    def __init__(self, resolution: int = 32, ss: int = 2, background: Background = 1.0):
        super().__init__(resolution, ss, background)
        self._objects: list = []

    def encode_prompts(self, prompts) -> Tensor:
        """Caption ids [B, 1] (−1 for ""); a view suffix is ignored: the camera says more."""
        from ui3d.world.captions import parse_prompt

        if isinstance(prompts, str):
            prompts = [prompts]
        ids = []
        for p in prompts:
            if p == "":
                ids.append(-1)
                continue
            obj = parse_prompt(p).to_object()
            if obj not in self._objects:
                self._objects.append(obj)
            ids.append(self._objects.index(obj))
        return torch.tensor(ids, dtype=torch.long).reshape(-1, 1)

    def renders(self, ids: list[int], cameras) -> Tensor:
        """[B, K, 3, r, r] in [−1, 1]: per sample the renders it may be (K = 1 for a caption, all
        encoded captions for "")."""
        from ui3d.world.dataset import render_pixels

        if not self._objects:
            raise ValueError("the camera-matched teacher needs at least one encoded caption first")
        cams = cameras.resized(self.resolution, self.resolution)
        every = torch.stack([render_pixels([obj] * len(cams), cams, self.ss, self.background) for obj in self._objects],
                            dim=1)
        pick = [[i] if i >= 0 else list(range(len(self._objects))) for i in ids]
        k = max(len(p) for p in pick)
        return torch.stack([every[b, (p * k)[:k]] for b, p in enumerate(pick)])

    def predict_eps(self, x_t: Tensor, t: Tensor, embeddings: Tensor, camera=None) -> Tensor:
        if camera is None:
            raise ValueError("the camera-matched exact teacher needs each sample's camera")
        b = x_t.shape[0]
        t = torch.as_tensor(t).reshape(-1).expand(b).cpu()
        alpha, sigma = (v.to(x_t).view(b, 1, 1, 1, 1) for v in self.schedule.alpha_sigma(t))
        x0 = self.renders(embeddings.reshape(b).tolist(), camera).to(x_t)  # [B, K, C, H, W]
        # posterior over the K renders, then ε = (x_t − α·E[x0 | x_t]) / σ
        logits = -((x_t[:, None] - alpha * x0) ** 2).flatten(2).sum(-1) / (2 * sigma.view(b, 1) ** 2)
        x0_mean = (logits.softmax(dim=1)[:, :, None, None, None] * x0).sum(1)
        return (x_t - alpha[:, 0] * x0_mean) / sigma[:, 0]
