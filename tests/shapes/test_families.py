"""The procedural shape families of world v3: enough named shapes, held-out families and members, outlines that fill
their box, distinct silhouettes at the built-in model's object sizes, continuous families, clear errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from diffinv.shapes.families import (
    FAMILIES,
    HELDOUT,
    HELDOUT_FAMILIES,
    NAMED,
    TRAIN,
    ShapeSpec,
    named_outline,
    outline,
)
from diffinv.shapes.render import coverage


def _mask(inside, pixels: int) -> np.ndarray:
    """The silhouette filling a ``pixels``-wide box (an image of ``pixels + 2`` pixels)."""
    size = pixels + 2
    return coverage(inside, (0.5, 0.5, pixels / size / 2), size) >= 0.5


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a, b).sum() / np.logical_or(a, b).sum())


def test_enough_named_shapes_and_the_held_out_ones() -> None:
    assert len(TRAIN) >= 30 and not set(TRAIN) & set(HELDOUT) and set(TRAIN) | set(HELDOUT) == set(NAMED)
    held_families = {NAMED[name].family for name in HELDOUT}
    assert set(HELDOUT_FAMILIES) <= held_families and "moon" in HELDOUT
    assert {NAMED[name].family for name in TRAIN}.isdisjoint(HELDOUT_FAMILIES)
    partly_held = {NAMED[n].family for n in HELDOUT} & {NAMED[n].family for n in TRAIN}
    assert len(partly_held) >= 2  # unseen members of families the model knows


@pytest.mark.parametrize("name", list(NAMED))
def test_every_outline_fills_its_box(name: str) -> None:
    points = np.concatenate([loop for part in named_outline(name).parts for loop in part.fill])
    lo, hi = points.min(axis=0), points.max(axis=0)
    np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-9)
    assert max(hi - lo) == pytest.approx(2.0)
    area = _mask(named_outline(name).inside, 64).mean()
    assert 0.1 < area < 0.99, area


def test_training_silhouettes_are_distinct_at_the_large_size() -> None:
    masks = {name: _mask(named_outline(name).inside, 19) for name in TRAIN}  # 0.30 x 64 px
    worst = max(_iou(masks[a], masks[b]) for a, b in itertools.combinations(TRAIN, 2))
    assert worst < 0.9


def test_families_vary_continuously() -> None:
    def mask(family: str, **params) -> np.ndarray:
        return _mask(outline(ShapeSpec(family, tuple(params.items()))).inside, 48)

    assert _iou(mask("crescent", thickness=0.3), mask("crescent", thickness=0.31)) > 0.95
    assert _iou(mask("crescent", thickness=0.3), mask("crescent", thickness=0.5)) < 0.8
    assert _iou(mask("ring", inner=0.6), mask("ring", inner=0.58)) > 0.95
    assert _iou(mask("star", points=5, inner=0.48), mask("star", points=5, inner=0.5)) > 0.95


def test_outlines_are_deterministic_and_cached() -> None:
    spec = NAMED["gear"]
    assert outline(spec) is outline(ShapeSpec("radial", spec.params))
    np.testing.assert_array_equal(_mask(outline(spec).inside, 30), _mask(named_outline("gear").inside, 30))


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError, match="unknown shape family 'blob'"):
        ShapeSpec("blob")
    with pytest.raises(ValueError, match="bad parameters for the 'star' family"):
        outline(ShapeSpec("star", (("tips", 5),)))
    with pytest.raises(ValueError, match="unknown shape 'hexagram'"):
        named_outline("hexagram")
    assert set(HELDOUT_FAMILIES) <= set(FAMILIES)
