"""View fidelity of a camera-conditioned teacher: does a sample drawn at camera c look like the object
seen from c? Silhouette IoU between each sample and the true render at the same camera.

The sample's silhouette is its saturated pixels, so only saturated colours are measured: the built-in
world's backgrounds are muted (saturation <= 0.3, :mod:`ui3d.render.background`) or white, and an
object of a saturated colour keeps saturation >= 0.5 under its shading. The same captions, cameras
and noise are sampled again with the camera dropped (the model's text-only mode, as trained with
camera dropout), so the difference is what the camera conditioning buys.
"""

from __future__ import annotations

import statistics
from typing import Sequence

import torch
from torch import Tensor

__all__ = ["SATURATED_COLOURS", "saturated_mask", "view_fidelity"]

SATURATED_COLOURS = ("red", "orange", "yellow", "green", "blue", "purple")


def saturated_mask(images: Tensor, threshold: float = 0.45, darkest: float = 0.15) -> Tensor:
    """[B, H, W] bool: pixels of images [B, 3, H, W] in [0, 1] whose HSV saturation is above
    ``threshold`` (and bright enough for saturation to mean something)."""
    hi, lo = images.amax(1), images.amin(1)
    return ((hi - lo) / hi.clamp_min(1e-6) > threshold) & (hi > darkest)


def _iou(a: Tensor, b: Tensor) -> Tensor:
    inter, union = (a & b).flatten(1).sum(1), (a | b).flatten(1).sum(1)
    return inter.float() / union.clamp_min(1).float()


@torch.no_grad()
def view_fidelity(teacher, objects: Sequence[str], colours: Sequence[str] = SATURATED_COLOURS, per_caption: int = 2,
                  steps: int = 30, cfg: float = 4.0, seed: int = 0, text_only: bool = True, guide=None) -> dict:
    """Mean silhouette IoU of samples at random dataset cameras against the true renders there,
    with the camera given and (``text_only``) with it dropped; also the median area ratio
    (sample / truth) and the IoU per object. ``guide`` replaces the sampler's CFG combination
    (``systems/camera_guidance.py``)."""
    from ui3d.cameras import sample_random_cameras
    from ui3d.prompt.views import view_suffixes, with_view_suffix
    from ui3d.teachers.protocol import guided_eps
    from ui3d.teachers.sampling import sample_images
    from ui3d.world.captions import parse_prompt
    from ui3d.world.dataset import dataset_cameras
    from ui3d.world.render import render_world

    captions = [f"a {c} {o}" for o in objects for c in colours for _ in range(per_caption)]
    g = torch.Generator().manual_seed(seed)
    cams = sample_random_cameras(len(captions), teacher.resolution, dataset_cameras(), g)
    prompts = [with_view_suffix(c, v) for c, v in zip(captions, view_suffixes(cams.azimuth_deg, cams.elevation_deg))]
    truth = render_world([parse_prompt(c).to_object() for c in captions], cams, background=1.0, ss=2).alpha[..., 0] > 0.5
    report: dict = {"samples": len(captions), "objects": list(objects), "colours": list(colours)}
    for name, cameras in (("with_camera", cams), ("without_camera", None))[: 2 if text_only else 1]:
        images = sample_images(teacher, prompts, steps, cfg, torch.Generator().manual_seed(seed + 1), cameras=cameras,
                               guide=guide or guided_eps)
        seen = saturated_mask(images)
        iou = _iou(seen, truth)
        area = seen.flatten(1).sum(1).float() / truth.flatten(1).sum(1).clamp_min(1).float()
        report[f"silhouette_iou_{name}"] = float(iou.mean())
        report[f"area_ratio_{name}"] = statistics.median(area.tolist())
        report[f"per_object_{name}"] = {o: float(iou[[i for i, c in enumerate(captions) if c.endswith(" " + o)]].mean())
                                        for o in objects}
    return report
