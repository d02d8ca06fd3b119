"""Prompt embeddings for guidance: one per view (front/side/back/overhead) plus the negative
(unconditional) one, encoded once per run and cached on disk keyed by model and prompt.

The model part of the key includes a fingerprint of the encoder itself (a hash of its embedding of
the empty prompt), so retraining or replacing a teacher under the same name never reuses stale
embeddings.

The cache holds safetensors files (never pickle); a corrupt entry is re-encoded, not trusted. It
lives in the user's cache folder (:func:`prompt_cache_dir`), never in the current folder, and a cache
folder that cannot be written is skipped: a run does not need its cache.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor

from ui3d.io import atomic_path
from ui3d.prompt.views import VIEWS, view_ids, view_prompts

Encoder = Callable[[Sequence[str]], Tensor]


@dataclass(frozen=True)
class PromptEmbeddings:
    """Per-view conditional embeddings [len(VIEWS), ...] and the negative one [1, ...]."""

    prompt: str
    negative_prompt: str
    views: Tensor
    negative: Tensor

    def for_cameras(self, azimuth_deg: Tensor, elevation_deg: Tensor) -> tuple[Tensor, Tensor]:
        """(cond [B, ...], uncond [B, ...]) for a camera batch: each camera gets its view's embedding."""
        ids = view_ids(azimuth_deg, elevation_deg).to(self.views.device)
        return self.views[ids], self.negative.expand(len(ids), *self.negative.shape[1:])

    def perp_negatives(self, azimuth_deg: Tensor, elevation_deg: Tensor) -> Tensor:
        """Perp-Neg's negative per camera [B, ...]: the back view for front cameras, else the front view
        (what a Janus object shows where it should not)."""
        ids = view_ids(azimuth_deg, elevation_deg).to(self.views.device)
        front, back = VIEWS.index("front view"), VIEWS.index("back view")
        return self.views[torch.where(ids == front, back, front)]


CACHE_ENV = "UI3D_CACHE_DIR"


def cache_root(explicit: str | Path | None = None) -> Path:
    """ui3d's cache folder: ``explicit`` (a ``--cache-dir`` flag), else ``$UI3D_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/ui3d`` (an absolute one, as the XDG spec says), else ``~/.cache/ui3d``."""
    chosen = explicit or os.environ.get(CACHE_ENV)
    if chosen:
        return Path(chosen).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "ui3d"


def prompt_cache_dir(explicit: str | Path | None = None) -> Path:
    """Where prompt embeddings are cached (see :func:`cache_root`)."""
    return cache_root(explicit) / "prompts"


def cache_key(model_id: str, text: str) -> str:
    return hashlib.sha256(f"{model_id}\n{text}".encode()).hexdigest()[:32]


def _cached(encoder: Encoder, texts: Sequence[str], model_id: str, cache_dir: Path | None) -> Tensor:
    """Encode texts, reading and writing one safetensors file per (model, text) in cache_dir."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    rows: dict[str, Tensor] = {}
    if cache_dir is not None:
        probe = encoder([""]).detach().float().cpu().contiguous()
        model_id = f"{model_id}@{hashlib.sha256(probe.numpy().tobytes()).hexdigest()[:16]}"
        for text in texts:
            path = cache_dir / f"{cache_key(model_id, text)}.safetensors"
            try:
                rows[text] = load_file(path)["embedding"]
            except (FileNotFoundError, SafetensorError, KeyError, OSError):
                pass
    missing = [t for t in dict.fromkeys(texts) if t not in rows]
    if missing:
        encoded = encoder(missing).detach().cpu()
        for text, emb in zip(missing, encoded):
            rows[text] = emb
            if cache_dir is not None:
                try:
                    cache_dir.mkdir(parents=True, exist_ok=True)
                    with atomic_path(cache_dir / f"{cache_key(model_id, text)}.safetensors") as tmp:
                        save_file({"embedding": emb.contiguous()}, str(tmp))
                except OSError:  # a read-only or full cache folder: run without the cache
                    cache_dir = None
    return torch.stack([rows[t] for t in texts])


def encode_prompt(encoder: Encoder, prompt: str, model_id: str, negative_prompt: str = "",
                  cache_dir: str | Path | None = None, view_dependent: bool = True) -> PromptEmbeddings:
    """Encode the prompt for every view (or the same text for all views) and the negative prompt."""
    if not prompt.strip():
        raise ValueError("the prompt is empty; describe the object, e.g. \"a ceramic owl\"")
    texts = view_prompts(prompt) if view_dependent else [prompt] * len(VIEWS)
    cache = Path(cache_dir) if cache_dir is not None else None
    emb = _cached(encoder, [*texts, negative_prompt], model_id, cache)
    return PromptEmbeddings(prompt, negative_prompt, emb[:-1], emb[-1:])
