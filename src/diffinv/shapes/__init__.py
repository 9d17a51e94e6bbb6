"""The Shapes world: procedural, seed-deterministic scenes of coloured shapes on a 3 x 3 grid.

Used to train a miniature Stable Diffusion and to score inversion and editing against exact ground truth.

Example::

    from diffinv.shapes import caption, dataset, parse_caption, render, render_masks

    scene = dataset("train", 1, seed=0)[0]
    image = render(scene, size=64)  # uint8 (64, 64, 3)
    text = caption(scene, rng=0)  # e.g. "a big red star at the top left, on a gray background"
    assert parse_caption(text) == scene.without_jitter().canonical()
    edited = scene.replace_object(0, color="green")
"""

from diffinv.shapes.captions import caption, count_tokens, parse_caption
from diffinv.shapes.render import object_coverage, render, render_masks
from diffinv.shapes.scene import Scene, ShapeObject
from diffinv.shapes.splits import (
    SPLITS,
    content_key,
    dataset,
    is_test_content,
    is_train_object,
    item_rng,
    sample_scene,
)
from diffinv.shapes.strokes import stroke_painting
from diffinv.shapes.vocab import (
    ALLOWED_COLORS,
    BACKGROUNDS,
    COLORS,
    HELDOUT_SHAPES,
    NOVEL_COMBOS,
    PALETTE,
    POSITIONS,
    SHAPES,
    SIZES,
    TRAIN_SHAPES,
)

__all__ = [
    "ALLOWED_COLORS",
    "BACKGROUNDS",
    "COLORS",
    "HELDOUT_SHAPES",
    "NOVEL_COMBOS",
    "PALETTE",
    "POSITIONS",
    "SHAPES",
    "SIZES",
    "SPLITS",
    "TRAIN_SHAPES",
    "Scene",
    "ShapeObject",
    "caption",
    "content_key",
    "count_tokens",
    "dataset",
    "is_test_content",
    "is_train_object",
    "item_rng",
    "object_coverage",
    "parse_caption",
    "render",
    "render_masks",
    "sample_scene",
    "stroke_painting",
]
