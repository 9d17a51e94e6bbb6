"""Splits of the Shapes world: determinism, seed separation, held-out shapes and novel combinations."""

from __future__ import annotations

import numpy as np
import pytest

from diffinv.shapes import (
    HELDOUT_SHAPES,
    NOVEL_COMBOS,
    SPLITS,
    TRAIN_SHAPES,
    Scene,
    caption,
    content_key,
    dataset,
    is_test_content,
    is_train_object,
    item_rng,
    sample_scene,
)

N = 1500


@pytest.fixture(scope="module")
def train() -> list[Scene]:
    return dataset("train", N, seed=0)


@pytest.fixture(scope="module")
def test_scenes() -> list[Scene]:
    return dataset("test", 500, seed=0)


def test_dataset_is_deterministic_and_prefix_stable(train: list[Scene]) -> None:
    assert dataset("train", 50, seed=0) == train[:50]
    assert dataset("train", 50, seed=1) != train[:50]
    for split in SPLITS:
        assert dataset(split, 20, seed=3) == dataset(split, 20, seed=3)


def test_sample_scene_is_deterministic_by_seed() -> None:
    for split in SPLITS:
        assert sample_scene(7, split) == sample_scene(np.random.default_rng(7), split)
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    assert [sample_scene(rng_a) for _ in range(20)] == [sample_scene(rng_b) for _ in range(20)]


def test_splits_use_separate_seed_streams() -> None:
    draws = {split: item_rng(split, 0, 0).integers(2**62, size=4).tolist() for split in SPLITS}
    assert len({tuple(d) for d in draws.values()}) == len(SPLITS)
    purposes = {p: item_rng("train", 0, 0, p).integers(2**62) for p in ("scene", "caption", "strokes")}
    assert len(set(purposes.values())) == 3
    assert item_rng("train", 0, 1).integers(2**62) != item_rng("train", 1, 0).integers(2**62)


def test_train_never_contains_heldout_shapes_or_novel_combos(train: list[Scene]) -> None:
    for i, scene in enumerate(train):
        for obj in scene.objects:
            assert obj.shape in TRAIN_SHAPES and obj.shape not in HELDOUT_SHAPES
            assert (obj.color, obj.shape) not in NOVEL_COMBOS
            assert is_train_object(obj)
        text = caption(scene, item_rng("train", 0, i, "caption"))
        assert not any(shape in text for shape in HELDOUT_SHAPES)
        assert not any(f"{color} {shape}" in text for color, shape in NOVEL_COMBOS)


def test_test_split_follows_train_distribution_but_never_repeats_train_scenes(
    train: list[Scene], test_scenes: list[Scene]
) -> None:
    assert all(is_train_object(o) for s in test_scenes for o in s.objects)
    assert all(is_test_content(s) for s in test_scenes)
    assert not any(is_test_content(s) for s in train)
    assert not {content_key(s) for s in train} & {content_key(s) for s in test_scenes}
    for scenes in (train, test_scenes):  # broad coverage of the vocabulary
        assert {len(s.objects) for s in scenes} == {1, 2, 3}
        assert {o.shape for s in scenes for o in s.objects} == set(TRAIN_SHAPES)


def test_heldout_shape_split() -> None:
    for scene in dataset("heldout_shape", 300, seed=0):
        special = [o for o in scene.objects if o.shape in HELDOUT_SHAPES]
        assert len(special) == 1
        assert all(is_train_object(o) for o in scene.objects if o not in special)


def test_novel_combo_split() -> None:
    seen = set()
    for scene in dataset("novel_combo", 300, seed=0):
        special = [o for o in scene.objects if (o.color, o.shape) in NOVEL_COMBOS]
        assert len(special) >= 1 and sum(not is_train_object(o) for o in scene.objects) == 1
        seen |= {(o.color, o.shape) for o in special}
    assert seen == set(NOVEL_COMBOS)


def test_objects_occupy_distinct_cells(train: list[Scene]) -> None:
    for scene in train + dataset("heldout_shape", 100) + dataset("novel_combo", 100):
        cells = [o.cell for o in scene.objects]
        assert len(cells) == len(set(cells))


def test_n_objects_and_jitter_options() -> None:
    for n in (1, 2, 3):
        assert all(len(sample_scene(seed, "train", n_objects=n).objects) == n for seed in range(20))
    assert all(o.offset == (0.0, 0.0) for s in dataset("train", 30, jitter=False) for o in s.objects)
    assert any(o.offset != (0.0, 0.0) for s in dataset("train", 30) for o in s.objects)


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError, match="split"):
        sample_scene(0, "validation")
    with pytest.raises(ValueError, match="split"):
        dataset("val", 3, 0)
    with pytest.raises(ValueError, match="n_objects"):
        sample_scene(0, n_objects=4)
    with pytest.raises(ValueError, match="n_objects"):
        sample_scene(0, n_objects=0)
    with pytest.raises(ValueError, match="purpose"):
        item_rng("train", 0, 0, "labels")
    with pytest.raises(ValueError, match="non-negative"):
        item_rng("train", -1, 0)
