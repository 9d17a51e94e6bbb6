"""The shapes of world v2 (the built-in model v2's world), as inside tests in the unit frame (bounding box
``[-1, 1]^2``, ``y`` up), their parameters in :data:`~diffinv.shapes.vocab.GEOMETRY`. World v3's shapes are the
parametric families of :mod:`diffinv.shapes.families`."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np

from diffinv.shapes.geometry import fit_to_box, inside_polygon, regular_star
from diffinv.shapes.vocab import GEOMETRY, SHAPES

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
