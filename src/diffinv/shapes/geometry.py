"""Polygon primitives of the Shapes renderers, in the unit frame (bounding box ``[-1, 1]^2``, ``y`` up): fitting a
vertex list to the box, star/regular-polygon vertices and the vectorised even-odd inside test."""

from __future__ import annotations

import math

import numpy as np


def fit_to_box(vertices: np.ndarray) -> np.ndarray:
    """Centre a polygon's bounding box on the origin and scale it so its larger half-extent is 1."""
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    return (vertices - (lo + hi) / 2) / ((hi - lo).max() / 2)


def regular_star(points: int, inner_ratio: float, rotation: float = 0.0) -> np.ndarray:
    """Vertices of a star with ``points`` tips, a tip pointing up (turned by ``rotation`` radians counter-clockwise),
    outer radius 1; ``inner_ratio = 1`` with every other vertex dropped is a regular polygon."""
    angles = math.pi / 2 + rotation + np.arange(2 * points) * math.pi / points
    radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner_ratio)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def inside_polygon(u: np.ndarray, v: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test, vectorised over points."""
    inside = np.zeros(np.broadcast(u, v).shape, dtype=bool)
    x0, y0 = vertices[-1]
    for x1, y1 in vertices:
        crosses = (y0 > v) != (y1 > v)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x0 + (v - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (u < x_at)
        x0, y0 = x1, y1
    return inside
