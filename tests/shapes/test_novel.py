"""Novel shapes for personalization: seeded, disjoint splits, exact masks, and the silhouette IoU."""

from __future__ import annotations

import numpy as np
import pytest

from diffinv.bench.concept_tasks import EVAL_PROMPTS, SHOTS, eval_prompts, training_shots
from diffinv.shapes import ALLOWED_COLORS, parse_caption
from diffinv.shapes.novel import (
    HELDOUT_OFFSET,
    ConceptShape,
    canonical,
    concept_caption,
    concept_shape,
    heldout_shape,
    novel_shape,
    object_mask,
    pretraining_shape,
    silhouette_iou,
)


def test_novel_shapes_are_pure_functions_of_their_index_and_splits_are_disjoint():
    assert novel_shape(7) == novel_shape(7) and novel_shape(7) != novel_shape(8)
    assert heldout_shape(0) == novel_shape(HELDOUT_OFFSET)
    assert concept_shape("novel-3").vertices == heldout_shape(3).vertices
    with pytest.raises(ValueError):
        pretraining_shape(HELDOUT_OFFSET)
    with pytest.raises(ValueError):
        concept_shape("hexagon")
    vertices = np.asarray(novel_shape(5).vertices)
    assert np.isclose(np.abs(vertices).max(), 1.0)  # fitted to the unit box


def test_masks_are_exact_and_the_iou_ignores_position_and_scale():
    moon = concept_shape("moon")
    image, mask = moon.render("red", "center", "white")
    assert mask.any() and (object_mask(image, "white") == mask).mean() > 0.99
    small, _ = moon.render("blue", "top left", "black", 128, "small")
    assert silhouette_iou(object_mask(small, "black"), mask) > 0.8
    circle, _ = ConceptShape("circle").render("red", "center", "white")
    assert silhouette_iou(object_mask(circle, "white"), mask) < 0.6
    assert silhouette_iou(np.zeros_like(mask), mask) == 0.0
    assert canonical(mask).shape == (32, 32)


def test_bench_prompts_are_captions_the_model_knows_and_differ_from_the_shots():
    text = concept_caption("red", "center", "white", "circle")
    assert parse_caption(text).objects[0].shape == "circle"
    assert all(color in ALLOWED_COLORS[background] for color, _, background in EVAL_PROMPTS)
    assert not {(c, p) for c, p, _ in EVAL_PROMPTS} & set(SHOTS)
    assert all("<m>" in prompt for prompt in eval_prompts("<m>"))
    shots = training_shots(concept_shape("moon"), 3)
    assert len(shots.images) == 3 and all(c.count("{}") == 1 for c in shots.captions)
