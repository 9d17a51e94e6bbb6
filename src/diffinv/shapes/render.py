"""Anti-aliased rasteriser of Shapes scenes (numpy only).

Each shape is defined by an inside test in a unit frame where its bounding box is ``[-1, 1]^2`` and ``y``
points up. Coverage of a pixel is the fraction of ``GEOMETRY.supersample^2`` regularly placed sub-samples
that fall inside the shape, which gives anti-aliased edges at any resolution. Objects are alpha-composited
over the background in drawing order (later objects on top).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from diffinv.shapes.scene import Scene, ShapeObject
from diffinv.shapes.v2_outlines import InsideFn
from diffinv.shapes.vocab import GEOMETRY, GRID, PALETTE, RGB
from diffinv.shapes.world import V2, FillStyle, World, get_world

# --------------------------------------------------------------------------------------------------------
# Layout and rasterisation
# --------------------------------------------------------------------------------------------------------


def object_box(obj: ShapeObject, scale: float = 1.0, world: World = V2) -> tuple[float, float, float]:
    """Centre ``(cx, cy)`` and half extent ``h`` of an object of ``world``, in image fractions (``y`` down).

    ``scale`` multiplies the object's extent (used by the stroke painter). In a world without ``jitter`` (v2), at
    ``scale=1`` the object's bounding box always lies inside its grid cell, whatever its offset; with it (v3), an
    offset of 1 moves the centre ``world.jitter`` cell widths, and the box is kept inside the image.
    """
    cell = 1.0 / GRID
    half = world.size_fraction[obj.size] * scale / 2
    row, col = obj.cell
    dx, dy = obj.offset
    if world.jitter <= 0:
        slack = max(cell / 2 - half, 0.0)
        return (col + 0.5) * cell + dx * slack, (row + 0.5) * cell + dy * slack, half
    lo, hi = min(half, 0.5), max(1.0 - half, 0.5)
    cx = min(max((col + 0.5 + dx * world.jitter) * cell, lo), hi)
    cy = min(max((row + 0.5 + dy * world.jitter) * cell, lo), hi)
    return cx, cy, half


def check_size(size: int) -> int:
    """Return ``size`` as an ``int`` if it is a positive integer, else raise ValueError."""
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    return int(size)


def object_coverage(obj: ShapeObject, size: int, scale: float = 1.0, world: World = V2) -> np.ndarray:
    """Anti-aliased coverage in ``[0, 1]`` of one object of ``world`` alone (its painted pixels: the whole silhouette
    when solid, its rim when outlined, rim and stripes when striped), a float32 array ``(size, size)``."""
    return coverage(world.inside(obj.shape), object_box(obj, scale, world), size, obj.fill, world.fill_style)


def coverage(
    inside: InsideFn, box: tuple[float, float, float], size: int, fill: str = "solid", style: FillStyle | None = None
) -> np.ndarray:
    """Anti-aliased coverage in ``[0, 1]`` of the shape with unit-frame inside test ``inside`` drawn in ``box``
    (centre ``(cx, cy)`` and half extent, image fractions, see :func:`object_box`), float32 ``(size, size)``.

    ``fill`` (with ``style``, default :class:`~diffinv.shapes.world.FillStyle`) paints only part of the silhouette:
    ``outlined`` the sub-samples within ``style.stroke`` of its edge, ``striped`` those plus diagonal stripes.
    """
    size = check_size(size)
    ss = GEOMETRY.supersample
    cx, cy, half = box
    out = np.zeros((size, size), dtype=np.float32)
    x0, x1 = max(math.floor((cx - half) * size), 0), min(math.ceil((cx + half) * size), size)
    y0, y1 = max(math.floor((cy - half) * size), 0), min(math.ceil((cy + half) * size), size)
    if x1 <= x0 or y1 <= y0:
        return out
    sub = (np.arange(ss) + 0.5) / ss
    px = (np.arange(x0, x1)[:, None] + sub[None, :]).ravel() / size
    py = (np.arange(y0, y1)[:, None] + sub[None, :]).ravel() / size
    samples = inside(((px - cx) / half)[None, :], (-(py - cy) / half)[:, None])
    if fill != "solid":
        samples = _painted(samples, px, py, fill, style or FillStyle(), size * ss)
    out[y0:y1, x0:x1] = samples.reshape(y1 - y0, ss, x1 - x0, ss).mean(axis=(1, 3))
    return out


def _painted(
    samples: np.ndarray, px: np.ndarray, py: np.ndarray, fill: str, style: FillStyle, per_unit: int
) -> np.ndarray:
    """The painted sub-samples of a silhouette ``samples`` (rows ``py``, columns ``px``, image fractions) under
    ``fill``; ``per_unit`` sub-samples span the image width."""
    # distance of every inside sub-sample to the nearest outside one (the grid's border counts as outside)
    depth = ndimage.distance_transform_edt(np.pad(samples, 1))[1:-1, 1:-1]
    rim = samples & (depth <= style.stroke * per_unit)
    if fill == "outlined":
        return rim
    if fill == "striped":
        stripes = ((px[None, :] + py[:, None]) / style.stripe_period) % 1.0 < 0.5
        return rim | (samples & stripes)
    raise ValueError(f"unknown fill {fill!r}")


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
    world = get_world(scene.world)
    layers = [(object_coverage(obj, size, world=world), PALETTE[obj.color]) for obj in scene.objects]
    return composite(size, PALETTE[scene.background], layers)


def render_masks(scene: Scene, size: int = 64) -> np.ndarray:
    """Visible masks of the objects, a bool array ``(n_objects, size, size)``.

    A pixel belongs to object ``i`` if its (painted, see :func:`object_coverage`) coverage by object ``i`` is at least
    ``GEOMETRY.mask_threshold`` and it does not belong to the mask of a later object (drawn on top).
    Masks are therefore disjoint.
    """
    size = check_size(size)
    world = get_world(scene.world)
    masks = np.stack([object_coverage(obj, size, world=world) >= GEOMETRY.mask_threshold for obj in scene.objects])
    occluded = np.zeros((size, size), dtype=bool)
    for i in range(len(masks) - 1, -1, -1):
        masks[i] &= ~occluded
        occluded |= masks[i]
    return masks
