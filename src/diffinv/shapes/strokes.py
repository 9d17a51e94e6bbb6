"""Crude "stroke paintings" of scenes: blocky, blurred, colour-quantised guides for SDEdit-style editing.

A painting is made from a perturbed copy of the scene (colours, positions and sizes jittered):

1. at a low resolution, every pixel is given to the background or to one object (the one with the largest
   visible coverage, plus noise that makes region borders ragged);
2. the region map is upsampled with nearest neighbours (blocky), every region's indicator is blurred and
   every pixel goes to the region with the largest blurred value (rounded, "painted" borders);
3. every region is filled with its flat colour, so the painting has at most ``n_objects + 1`` colours.

Small objects become blobs and large ones keep a rough outline of their shape.
"""

from __future__ import annotations

import numpy as np

from diffinv.shapes.render import check_size, object_coverage
from diffinv.shapes.scene import Scene
from diffinv.shapes.vocab import PALETTE, RGB, STROKE_STYLE
from diffinv.shapes.world import get_world


def _jitter_color(rgb: RGB, rng: np.random.Generator) -> np.ndarray:
    delta = rng.integers(-STROKE_STYLE.color_jitter, STROKE_STYLE.color_jitter + 1, size=3)
    return np.clip(np.asarray(rgb) + delta, 0, 255).astype(np.uint8)


def _resample_matrix(size: int, low: int, sigma: float) -> np.ndarray:
    """Matrix ``(size, low)`` of nearest-neighbour upsampling followed by a Gaussian blur (reflect edges)."""
    nearest = np.zeros((size, low))
    nearest[np.arange(size), np.arange(size) * low // size] = 1.0
    if sigma <= 0:
        return nearest
    radius = max(1, int(np.ceil(STROKE_STYLE.blur_truncate * sigma)))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    blur = np.zeros((size, size))
    for offset, weight in zip(offsets, kernel, strict=True):
        source = np.arange(size) + offset
        source = np.where(source < 0, -source - 1, source)
        source = np.where(source >= size, 2 * size - source - 1, source)
        np.add.at(blur, (np.arange(size), source), weight)
    return blur @ nearest


def stroke_painting(scene: Scene, size: int = 64, rng: np.random.Generator | int = 0) -> np.ndarray:
    """A crude painting of ``scene``: uint8 ``(size, size, 3)`` with at most ``n_objects + 1`` colours.

    Args:
        scene: The scene to paint.
        size: Output resolution (any positive integer).
        rng: Generator (advanced in place) or integer seed; the painting is deterministic for a given seed.
    """
    size = check_size(size)
    rng = np.random.default_rng(rng)
    style = STROKE_STYLE
    low = max(size // style.downscale, style.min_resolution)
    world = get_world(scene.world)

    colors = [_jitter_color(PALETTE[scene.background], rng)]
    visible = []
    remaining = np.ones((low, low))
    for obj in reversed(scene.objects):  # top-most first, to compute visible coverage
        offset = np.clip(np.asarray(obj.offset) + rng.normal(0.0, style.offset_jitter, size=2), -1.0, 1.0)
        scale = 1.0 + rng.uniform(-style.scale_jitter, style.scale_jitter)
        coverage = object_coverage(obj.replace(offset=tuple(offset), fill="solid"), low, scale, world).astype(
            np.float64
        )
        visible.append(coverage * remaining)
        remaining = remaining * (1.0 - coverage)
        colors.append(_jitter_color(PALETTE[obj.color], rng))
    scores = np.stack([remaining, *visible])  # (k, low, low): background, then objects top-most first
    scores += rng.normal(0.0, style.label_noise, size=scores.shape)
    labels = scores.argmax(axis=0)

    onehot = (labels[None] == np.arange(len(colors))[:, None, None]).astype(np.float64)
    resample = _resample_matrix(size, low, style.blur * size / low)
    smooth = resample @ onehot @ resample.T  # (k, size, size)
    return np.stack(colors)[smooth.argmax(axis=0)]
