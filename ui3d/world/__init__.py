"""The built-in world: procedural objects (SDFs of primitives with per-part colours and materials),
an analytic sphere-tracing renderer, a caption grammar, ground truth and a seeded dataset.

Conventions are those of :mod:`ui3d.cameras` (+z up, objects face +x, inside radius 0.5).
"""

from ui3d.world.captions import WorldPrompt, make_caption, parse_prompt, vocabulary
from ui3d.world.dataset import (
    WorldBatch,
    WorldDataset,
    WorldDatasetConfig,
    dataset_cameras,
    render_captions,
    render_pixels,
    sample_batch,
    sample_prompts,
)
from ui3d.world.ground_truth import (
    SurfaceSamples,
    colour_at,
    occupancy_grid,
    part_colours,
    sdf_grid,
    surface_samples,
)
from ui3d.world.objects import (
    COMPOSITES,
    OBJECTS,
    PRIMITIVES,
    ObjectShape,
    Part,
    WorldObject,
    get_shape,
    make_object,
)
from ui3d.world.palette import COLOURS, MATERIALS, Material
from ui3d.world.render import TraceSettings, measure_render_rate, render_world

__all__ = [
    "COLOURS",
    "COMPOSITES",
    "MATERIALS",
    "OBJECTS",
    "PRIMITIVES",
    "Material",
    "ObjectShape",
    "Part",
    "SurfaceSamples",
    "TraceSettings",
    "WorldBatch",
    "WorldDataset",
    "WorldDatasetConfig",
    "WorldObject",
    "WorldPrompt",
    "colour_at",
    "dataset_cameras",
    "get_shape",
    "make_caption",
    "make_object",
    "measure_render_rate",
    "occupancy_grid",
    "parse_prompt",
    "part_colours",
    "render_captions",
    "render_pixels",
    "render_world",
    "sample_batch",
    "sample_prompts",
    "sdf_grid",
    "surface_samples",
    "vocabulary",
]
