"""Metrics of a one-step generator.

Built-in teacher: the protocol of ``ui3d teacher eval`` (``assets/BUILTIN_TEACHER.md``), so the
numbers compare with the teacher's: ``per_caption`` samples of each of the 143 object × colour
captions in the same order, judged with colour words only; world-FID against renders of the same
captions from cameras seeded ``seed + 1``.

Image folders: FID with pytorch-fid's Inception network when the package and its weights are
present locally; otherwise ``None`` and a message saying what is missing.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import Tensor

from ui3d.generator.onestep import OneStepGenerator

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"


@torch.no_grad()
def generate(generator: OneStepGenerator, n: int, cond: Tensor | None, seed: int, batch: int = 64) -> tuple[Tensor, float]:
    """n samples in [−1, 1] (clamped) from z drawn with ``seed`` and the wall seconds it took."""
    g = torch.Generator().manual_seed(seed)
    z = generator.sample_latent(n, g)
    dev = next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    start = time.perf_counter()
    out = [generator(z[i : i + batch].to(dev), None if cond is None else cond[i : i + batch].to(dev)).float().cpu()
           for i in range(0, n, batch)]
    seconds = time.perf_counter() - start
    generator.train(was_training)
    return torch.cat(out).clamp(-1, 1), seconds


def evaluate_builtin(generator: OneStepGenerator, embeddings: Tensor, judge, per_caption: int = 2, seed: int = 0) -> tuple[dict, Tensor]:
    """Judge accuracy and world-FID of one-step samples (``embeddings``: the 143 captions'), and the samples."""
    from ui3d.metrics.fid import fid_from_features
    from ui3d.metrics.judge import object_colour_captions
    from ui3d.world.dataset import render_captions

    rows = object_colour_captions()
    if embeddings.shape[0] != len(rows):
        raise ValueError(f"expected embeddings of the {len(rows)} object × colour captions, got {embeddings.shape[0]}")
    index = torch.arange(len(rows)).repeat_interleave(per_caption)
    batch = [rows[i] for i in index.tolist()]
    samples, seconds = generate(generator, len(batch), embeddings[index], seed)
    pred = judge.predict(samples, colour_words_only=True)
    obj_ok = [p == r[1] for p, r in zip(pred["object"], batch)]
    col_ok = [p == r[2] for p, r in zip(pred["colour"], batch)]
    renders = render_captions([r[0] for r in batch], seed + 1)
    n = len(batch)
    return {
        "n_samples": n,
        "object_accuracy": round(sum(obj_ok) / n, 4),
        "colour_accuracy": round(sum(col_ok) / n, 4),
        "both_accuracy": round(sum(a and b for a, b in zip(obj_ok, col_ok)) / n, 4),
        "world_fid": round(fid_from_features(judge.features(samples), judge.features(renders)), 3),
        "sampling_seconds": round(seconds, 3),
        "samples_per_second": round(n / seconds, 1),
    }, samples


def inception_weights() -> Path | None:
    """pytorch-fid's Inception weights in the torch hub cache, or None."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    return path if path.is_file() else None


def folder_fid(samples: Tensor, real: Tensor) -> tuple[float | None, str]:
    """FID between samples and real images ([N, C, H, W] in [−1, 1]) with pytorch-fid, or (None, why)."""
    try:
        from pytorch_fid.fid_score import calculate_frechet_distance
        from pytorch_fid.inception import InceptionV3
    except ImportError:
        return None, "FID needs the pytorch-fid package (pip install pytorch-fid); not installed"
    weights = inception_weights()
    if weights is None:
        return None, (f"FID needs pytorch-fid's Inception weights at '{Path(torch.hub.get_dir()) / 'checkpoints' / INCEPTION_FILE}'"
                      " (no download is attempted); copy the file there")
    model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()

    def feats(x: Tensor):
        x = (x + 1) / 2
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        with torch.no_grad():
            return torch.cat([model(x[i : i + 100])[0].flatten(1) for i in range(0, len(x), 100)]).double().numpy()

    import numpy as np

    a, b = feats(samples), feats(real)
    return float(calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))), "pytorch-fid"
