"""Stroke paintings and the preview helper of the Shapes world."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffinv.shapes import PALETTE, Scene, dataset, render, render_masks, stroke_painting
from diffinv.shapes.preview import main as preview_main


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    return dataset("train", 12, seed=2)


def _n_colors(image: np.ndarray) -> int:
    return len(np.unique(image.reshape(-1, 3), axis=0))


def test_stroke_painting_is_deterministic(scenes: list[Scene]) -> None:
    for scene in scenes[:4]:
        assert stroke_painting(scene, 64, 5).tobytes() == stroke_painting(scene, 64, 5).tobytes()
        rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
        assert (stroke_painting(scene, 64, rng_a) == stroke_painting(scene, 64, rng_b)).all()
    assert any((stroke_painting(s, 64, 0) != stroke_painting(s, 64, 1)).any() for s in scenes)


@pytest.mark.parametrize("size", [16, 64, 100, 256])
def test_stroke_painting_shape_and_few_colours(size: int, scenes: list[Scene]) -> None:
    for scene in scenes[:3]:
        painting = stroke_painting(scene, size, 0)
        assert painting.shape == (size, size, 3) and painting.dtype == np.uint8
        assert _n_colors(painting) <= len(scene.objects) + 1


def test_stroke_painting_is_crude_but_resembles_the_scene(scenes: list[Scene]) -> None:
    for seed, scene in enumerate(scenes):
        painting = stroke_painting(scene, 64, seed).astype(int)
        image = render(scene, 64)
        assert _n_colors(painting) < _n_colors(image)
        assert (painting != image).any()
        # the background dominates and stays close to its colour
        colors, counts = np.unique(painting.reshape(-1, 3), axis=0, return_counts=True)
        assert np.abs(colors[counts.argmax()] - PALETTE[scene.background]).max() <= 24
        # every object is painted in roughly its colour, roughly its size, in (or just around) its cell
        for obj, mask in zip(scene.objects, render_masks(scene, 64), strict=True):
            close = np.abs(painting - np.array(PALETTE[obj.color])).max(axis=-1) <= 24
            row, col = obj.cell
            margin = 3
            cell = np.zeros_like(mask)
            cell[
                max(row * 21 - margin, 0) : (row + 1) * 21 + margin,
                max(col * 21 - margin, 0) : (col + 1) * 21 + margin,
            ] = True
            assert 0.4 * mask.sum() <= (close & cell).sum() <= 2.5 * mask.sum()
            (y0, x0), (y1, x1) = np.argwhere(mask).mean(axis=0), np.argwhere(close & cell).mean(axis=0)
            assert np.hypot(y1 - y0, x1 - x0) <= 9


def test_preview_writes_a_grid_and_prints_captions(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "preview.png"
    preview_main([str(out), "--n", "4", "--size", "32", "--seed", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and all("background" in line for line in lines)
    with Image.open(out) as image:
        assert image.size == (2 * 32 + 2, 2 * 32 + 2)
