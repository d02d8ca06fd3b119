"""Captioned renders of the built-in world, deterministic by seed (the built-in teacher's data).

Each sample is (object, colour/material words, camera): the object is uniform over the chosen
objects; a colour word is said with probability ``p_colour`` and a material word with probability
``p_material`` (unsaid words take their defaults, see :mod:`ui3d.world.captions`); the camera comes
from :func:`ui3d.cameras.sample_random_cameras` and the caption gets the view suffix of that camera
(:func:`ui3d.prompt.view_suffix`) with probability ``p_view_suffix``. Images are rendered by
:func:`ui3d.world.render.render_world` and returned channels-first in [-1, 1].

Batch ``k`` of ``WorldDataset(config, seed)`` depends only on ``(seed, k, batch_size)``, so a run
can resume anywhere. Rendering cost: see :mod:`ui3d.world.render` (about 200 images/s at 32x32
with the default ss=2 on 2 cores).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Sequence

import torch
from torch import Tensor

from ui3d.cameras import CameraRanges, Cameras, sample_random_cameras, with_turned_twins
from ui3d.prompt.views import VIEWS, view_ids
from ui3d.render.background import muted_backgrounds
from ui3d.world.captions import WorldPrompt, make_caption, parse_prompt
from ui3d.world.objects import OBJECTS, WorldObject, make_object
from ui3d.world.palette import COLOURS, MATERIALS
from ui3d.world.render import render_world

__all__ = [
    "WorldDatasetConfig", "WorldBatch", "WorldDataset", "sample_prompts", "sample_batch", "dataset_cameras",
    "view_cameras", "render_pixels", "render_captions",
]


def dataset_cameras() -> CameraRanges:
    """The cameras of the world's captioned renders: DreamFusion's ranges, with the elevation
    widened to 70 deg so "overhead view" (> 60 deg) appears in about 1 caption in 8."""
    return CameraRanges(elevation_deg=(-10.0, 70.0))


def view_cameras(view: str | None, n: int, resolution: int, generator: torch.Generator) -> Cameras:
    """``n`` dataset cameras (:func:`dataset_cameras`) of one view bucket (a phrase of
    :data:`ui3d.prompt.VIEWS`; None: any view), by drawing and keeping those of the view."""
    cams = sample_random_cameras(max(4 * n, 64), resolution, dataset_cameras(), generator)
    if view is None:
        return cams[:n]
    keep = (view_ids(cams.azimuth_deg, cams.elevation_deg) == VIEWS.index(view)).nonzero().squeeze(-1)
    while keep.numel() < n:  # rare views (overhead): draw more
        cams = sample_random_cameras(16 * n, resolution, dataset_cameras(), generator)
        keep = (view_ids(cams.azimuth_deg, cams.elevation_deg) == VIEWS.index(view)).nonzero().squeeze(-1)
    return cams[keep[:n]]


def render_pixels(objects: WorldObject | Sequence[WorldObject], cameras: Cameras, ss: int = 2,
                  background: float | Tensor = 1.0) -> Tensor:
    """Renders as the teachers see them (on white unless ``background`` says otherwise):
    [B, 3, r, r] in [-1, 1]."""
    out = render_world(objects, cameras, background=background, ss=ss)
    return out.rgb.permute(0, 3, 1, 2).mul(2.0).sub(1.0).contiguous()


def render_captions(captions: Sequence[str], seed: int, resolution: int = 32, ss: int = 2,
                    shard: slice = slice(None), background_kind: str = "plain") -> Tensor:
    """One render per caption of ``captions[shard]`` (:func:`render_pixels`), from dataset cameras
    drawn for all the captions with ``seed``, so every process of a data-parallel run draws the
    same cameras; on white, or on muted backgrounds (``background_kind`` "muted", drawn after the
    cameras)."""
    gen = torch.Generator().manual_seed(seed)
    cams = sample_random_cameras(len(captions), resolution, dataset_cameras(), gen)
    objects = [parse_prompt(c).to_object() for c in captions[shard]]
    if background_kind == "plain":
        return render_pixels(objects, cams[shard], ss)
    return render_pixels(objects, cams[shard], ss, muted_backgrounds(len(captions), resolution, resolution, gen)[shard])


@dataclass(frozen=True)
class WorldDatasetConfig:
    resolution: int = 32
    objects: tuple[str, ...] = ()  # empty: all objects
    colours: tuple[str, ...] = ()  # empty: all colour words
    materials: tuple[str, ...] = ()  # empty: all materials
    p_colour: float = 0.8
    p_material: float = 0.3
    p_view_suffix: float = 0.9
    cameras: CameraRanges = field(default_factory=dataset_cameras)
    ss: int = 2
    background: float = 1.0  # grey level of the "plain" backgrounds
    background_kind: str = "plain"  # plain | muted (ui3d.render.background.muted_backgrounds: teacher v2)
    # > 0: a batch is half as many scenes, each also seen with the camera turned by this many degrees
    # (second half of the batch), all else equal (sample_batch)
    turned_pairs_deg: float = 0.0

    def __post_init__(self) -> None:
        for name, chosen, known in (
            ("objects", self.objects, OBJECTS),
            ("colours", self.colours, COLOURS),
            ("materials", self.materials, MATERIALS),
        ):
            unknown = [w for w in chosen if w not in known]
            if unknown:
                raise ValueError(f"WorldDatasetConfig.{name}: unknown {unknown}; known: {', '.join(known)}")
        for name in ("p_colour", "p_material", "p_view_suffix"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(
                    f"WorldDatasetConfig.{name}: expected a probability, got {getattr(self, name)}"
                )
        if self.background_kind not in ("plain", "muted"):
            raise ValueError(f"WorldDatasetConfig.background_kind: expected 'plain' or 'muted', got {self.background_kind!r}")
        if self.resolution <= 0 or self.ss < 1:
            raise ValueError(
                f"WorldDatasetConfig: resolution > 0 and ss >= 1 expected, got {self.resolution}, {self.ss}"
            )

    @property
    def object_names(self) -> tuple[str, ...]:
        return self.objects or tuple(OBJECTS)

    @property
    def colour_names(self) -> tuple[str, ...]:
        return self.colours or tuple(COLOURS)

    @property
    def material_names(self) -> tuple[str, ...]:
        return self.materials or tuple(MATERIALS)


@dataclass
class WorldBatch:
    images: Tensor  # [B, 3, H, W] in [-1, 1]
    alpha: Tensor  # [B, 1, H, W] in [0, 1]
    captions: list[str]  # with the view suffix where one was drawn
    prompts: list[WorldPrompt]  # view = the camera's view, whether or not the caption says it
    cameras: Cameras


def _choice(options: tuple[str, ...], n: int, generator: torch.Generator) -> list[str]:
    return [options[i] for i in torch.randint(len(options), (n,), generator=generator).tolist()]


def sample_prompts(
    n: int, generator: torch.Generator, config: WorldDatasetConfig = WorldDatasetConfig()
) -> list[WorldPrompt]:
    """n random prompts (no view) following the config's word probabilities."""
    objects = _choice(config.object_names, n, generator)
    colours = _choice(config.colour_names, n, generator)
    materials = _choice(config.material_names, n, generator)
    say_colour = (torch.rand(n, generator=generator) < config.p_colour).tolist()
    say_material = (torch.rand(n, generator=generator) < config.p_material).tolist()
    prompts = []
    for obj, col, mat, sc, sm in zip(objects, colours, materials, say_colour, say_material):
        colour_word, material_word = (col if sc else None), (mat if sm else None)
        resolved = make_object(obj, colour_word, material_word)
        prompts.append(
            WorldPrompt(
                obj, resolved.colour, resolved.material, None, make_caption(obj, colour_word, material_word)
            )
        )
    return prompts


def sample_batch(
    batch_size: int, generator: torch.Generator, config: WorldDatasetConfig = WorldDatasetConfig()
) -> WorldBatch:
    """Sample prompts and cameras, render, caption."""
    if batch_size <= 0:
        raise ValueError(f"batch_size: expected a positive number, got {batch_size}")
    paired = config.turned_pairs_deg > 0
    if paired and batch_size % 2:
        raise ValueError(f"batch_size: turned pairs need an even batch, got {batch_size}")
    scenes = batch_size // 2 if paired else batch_size
    prompts = sample_prompts(scenes, generator, config)
    cams = sample_random_cameras(scenes, config.resolution, config.cameras, generator)
    say_view = (torch.rand(scenes, generator=generator) < config.p_view_suffix).tolist()
    background: float | Tensor = config.background
    if config.background_kind == "muted":  # drawn last: plain batches keep their random stream
        background = muted_backgrounds(scenes, config.resolution, config.resolution, generator)
    if paired:  # the same scenes again, turned: what a pair shares cancels from the turn's gradient
        cams = with_turned_twins(cams, config.turned_pairs_deg)
        prompts, say_view = prompts * 2, say_view * 2
        if isinstance(background, Tensor):
            background = torch.cat([background, background])
    views = [VIEWS[i] for i in view_ids(cams.azimuth_deg, cams.elevation_deg).tolist()]
    prompts = [WorldPrompt(p.object, p.colour, p.material, v, p.text) for p, v in zip(prompts, views)]
    captions = [p.caption if say else p.text for p, say in zip(prompts, say_view)]
    out = render_world([p.to_object() for p in prompts], cams, background=background, ss=config.ss)
    images = out.rgb.permute(0, 3, 1, 2).mul(2.0).sub(1.0).contiguous()
    alpha = out.alpha.permute(0, 3, 1, 2).contiguous()
    return WorldBatch(images=images, alpha=alpha, captions=captions, prompts=prompts, cameras=cams)


class WorldDataset:
    """Endless, seeded stream of captioned renders: ``batch(k, n)`` is a pure function of
    ``(seed, k, n)``; iterating yields batches 0, 1, 2, ..."""

    def __init__(
        self, config: WorldDatasetConfig = WorldDatasetConfig(), seed: int = 0, batch_size: int = 64
    ):
        self.config = config
        self.seed = int(seed)
        self.batch_size = int(batch_size)

    def generator_for(self, index: int) -> torch.Generator:
        return torch.Generator().manual_seed((self.seed * 1_000_003 + int(index)) % (2**63 - 1))

    def batch(self, index: int, batch_size: int | None = None) -> WorldBatch:
        return sample_batch(batch_size or self.batch_size, self.generator_for(index), self.config)

    def __iter__(self) -> Iterator[WorldBatch]:
        index = 0
        while True:
            yield self.batch(index)
            index += 1
