"""Anti-aliased rasteriser of Shapes scenes (numpy only).

Each shape is defined by an inside test in a unit frame where its bounding box is ``[-1, 1]^2`` and ``y``
points up. Coverage of a pixel is the fraction of ``GEOMETRY.supersample^2`` regularly placed sub-samples
that fall inside the shape, which gives anti-aliased edges at any resolution. Objects are alpha-composited
over the background in drawing order (later objects on top).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import cache

import numpy as np

from diffinv.shapes.geometry import fit_to_box, inside_polygon, regular_star
from diffinv.shapes.scene import Scene, ShapeObject
from diffinv.shapes.vocab import GEOMETRY, GRID, PALETTE, RGB, SHAPES, SIZE_FRACTION

FloatArray = np.ndarray
InsideFn = Callable[[FloatArray, FloatArray], np.ndarray]

# --------------------------------------------------------------------------------------------------------
# Shape inside tests, unit frame: bounding box [-1, 1]^2, y up
# --------------------------------------------------------------------------------------------------------


@cache
def _polygon(shape: str) -> np.ndarray:
    """Vertices (counter-clockwise, fitted to the unit box) of the polygonal shapes."""
    g = GEOMETRY
    if shape == "triangle":
        verts = regular_star(3, 1.0)[::2]  # equilateral, apex up
    elif shape == "star":
        verts = regular_star(g.star_points, g.star_inner_ratio)
    elif shape == "pentagon":
        verts = regular_star(5, 1.0)[::2]  # regular, a vertex up
    elif shape == "diamond":
        w = g.diamond_half_width
        verts = np.array([[0.0, 1.0], [-w, 0.0], [0.0, -1.0], [w, 0.0]])
    else:
        raise KeyError(shape)
    return fit_to_box(verts)


def _circle(u: FloatArray, v: FloatArray) -> np.ndarray:
    return u * u + v * v <= 1.0


def _square(u: FloatArray, v: FloatArray) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v)) <= GEOMETRY.square_half_side


def _cross(u: FloatArray, v: FloatArray) -> np.ndarray:
    au, av = np.abs(u), np.abs(v)
    w = GEOMETRY.cross_half_width
    return ((au <= w) & (av <= 1.0)) | ((av <= w) & (au <= 1.0))


def _ring(u: FloatArray, v: FloatArray) -> np.ndarray:
    r2 = u * u + v * v
    return (r2 <= 1.0) & (r2 >= GEOMETRY.ring_inner_radius**2)


def _heart(u: FloatArray, v: FloatArray) -> np.ndarray:
    x = u * GEOMETRY.heart_scale
    y = v * GEOMETRY.heart_scale + GEOMETRY.heart_shift
    return (x * x + y * y - 1.0) ** 3 - x * x * y**3 <= 0.0


def _moon(u: FloatArray, v: FloatArray) -> np.ndarray:
    cx, cy = GEOMETRY.moon_cut_offset
    cut = (u - cx) ** 2 + (v - cy) ** 2 <= GEOMETRY.moon_cut_radius**2
    return _circle(u, v) & ~cut


def _polygon_fn(shape: str) -> InsideFn:
    return lambda u, v: inside_polygon(u, v, _polygon(shape))


INSIDE: dict[str, InsideFn] = {
    "circle": _circle,
    "square": _square,
    "triangle": _polygon_fn("triangle"),
    "star": _polygon_fn("star"),
    "heart": _heart,
    "cross": _cross,
    "ring": _ring,
    "diamond": _polygon_fn("diamond"),
    "pentagon": _polygon_fn("pentagon"),
    "moon": _moon,
}
"""Inside test of every shape, in the unit frame (bounding box ``[-1, 1]^2``, ``y`` up)."""

if set(INSIDE) != set(SHAPES):  # pragma: no cover - guards edits of the vocabulary
    raise RuntimeError(f"shapes without an inside test: {sorted(set(SHAPES) - set(INSIDE))}")


# --------------------------------------------------------------------------------------------------------
# Layout and rasterisation
# --------------------------------------------------------------------------------------------------------


def object_box(obj: ShapeObject, scale: float = 1.0) -> tuple[float, float, float]:
    """Centre ``(cx, cy)`` and half extent ``h`` of an object, in image fractions (``y`` down).

    ``scale`` multiplies the object's extent (used by the stroke painter); at ``scale=1`` the object's
    bounding box always lies inside its grid cell, whatever its offset.
    """
    cell = 1.0 / GRID
    half = SIZE_FRACTION[obj.size] * scale / 2
    slack = max(cell / 2 - half, 0.0)
    row, col = obj.cell
    dx, dy = obj.offset
    return (col + 0.5) * cell + dx * slack, (row + 0.5) * cell + dy * slack, half


def check_size(size: int) -> int:
    """Return ``size`` as an ``int`` if it is a positive integer, else raise ValueError."""
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    return int(size)


def object_coverage(obj: ShapeObject, size: int, scale: float = 1.0) -> np.ndarray:
    """Anti-aliased coverage in ``[0, 1]`` of one object alone, as a float32 array ``(size, size)``."""
    return coverage(INSIDE[obj.shape], object_box(obj, scale), size)


def coverage(inside: InsideFn, box: tuple[float, float, float], size: int) -> np.ndarray:
    """Anti-aliased coverage in ``[0, 1]`` of the shape with unit-frame inside test ``inside`` drawn in ``box``
    (centre ``(cx, cy)`` and half extent, image fractions, see :func:`object_box`), float32 ``(size, size)``."""
    size = check_size(size)
    ss = GEOMETRY.supersample
    cx, cy, half = box
    out = np.zeros((size, size), dtype=np.float32)
    x0, x1 = max(math.floor((cx - half) * size), 0), min(math.ceil((cx + half) * size), size)
    y0, y1 = max(math.floor((cy - half) * size), 0), min(math.ceil((cy + half) * size), size)
    if x1 <= x0 or y1 <= y0:
        return out
    sub = (np.arange(ss) + 0.5) / ss
    xs = ((np.arange(x0, x1)[:, None] + sub[None, :]).ravel() / size - cx) / half
    ys = -((np.arange(y0, y1)[:, None] + sub[None, :]).ravel() / size - cy) / half
    block = inside(xs[None, :], ys[:, None]).reshape(y1 - y0, ss, x1 - x0, ss).mean(axis=(1, 3))
    out[y0:y1, x0:x1] = block
    return out


def composite(
    size: int,
    background: RGB,
    layers: Sequence[tuple[np.ndarray, RGB]],
) -> np.ndarray:
    """Alpha-composite ``(coverage, rgb)`` layers in order over a plain background; returns uint8 HxWx3."""
    image = np.empty((size, size, 3), dtype=np.float64)
    image[:] = np.asarray(background, dtype=np.float64)
    for coverage, rgb in layers:
        alpha = coverage[..., None].astype(np.float64)
        image += alpha * (np.asarray(rgb, dtype=np.float64) - image)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def render(scene: Scene, size: int = 64) -> np.ndarray:
    """Render ``scene`` as an anti-aliased RGB image, a uint8 array of shape ``(size, size, 3)``.

    Deterministic: the same scene always gives the same bytes (jitter is part of the scene data).
    """
    size = check_size(size)
    layers = [(object_coverage(obj, size), PALETTE[obj.color]) for obj in scene.objects]
    return composite(size, PALETTE[scene.background], layers)


def render_masks(scene: Scene, size: int = 64) -> np.ndarray:
    """Visible masks of the objects, a bool array ``(n_objects, size, size)``.

    A pixel belongs to object ``i`` if its coverage by object ``i`` is at least
    ``GEOMETRY.mask_threshold`` and it does not belong to the mask of a later object (drawn on top).
    Masks are therefore disjoint.
    """
    size = check_size(size)
    masks = np.stack([object_coverage(obj, size) >= GEOMETRY.mask_threshold for obj in scene.objects])
    occluded = np.zeros((size, size), dtype=bool)
    for i in range(len(masks) - 1, -1, -1):
        masks[i] &= ~occluded
        occluded |= masks[i]
    return masks
