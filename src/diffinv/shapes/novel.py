"""Shapes the built-in model has never seen, for personalization: the held-out ``moon`` and a seeded family of
procedurally generated novel shapes (random star polygons and smooth blobs), rendered like every Shapes object
(same layout, anti-aliasing and exact masks), plus the geometric fidelity measure that scores a generated object
against a shape: the IoU of silhouettes after normalising position and scale.

Novel shape ``i`` is a pure function of ``i``. Indices below :data:`HELDOUT_OFFSET` are for pre-training
(:func:`pretraining_shape`), those from it on are the held-out evaluation shapes (:func:`heldout_shape`), so an
encoder pre-trained on the first set never sees one of the second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Final

import numpy as np
from skimage.measure import label
from skimage.transform import resize

from diffinv.shapes.captions import caption
from diffinv.shapes.geometry import fit_to_box, inside_polygon
from diffinv.shapes.render import composite, coverage, object_box
from diffinv.shapes.scene import Scene, ShapeObject
from diffinv.shapes.v2_outlines import InsideFn
from diffinv.shapes.vocab import GEOMETRY, PALETTE
from diffinv.shapes.world import DEFAULT_WORLD, get_world

NOVEL_SEED: Final[int] = 0x6E6F76656C  # "novel"
HELDOUT_OFFSET: Final[int] = 1_000_000
"""Novel shapes ``0 .. HELDOUT_OFFSET - 1`` are for pre-training; held-out shape ``i`` is novel shape
``HELDOUT_OFFSET + i``."""
BLOB_VERTICES: Final[int] = 96
CANONICAL_SIZE: Final[int] = 32
"""Side of the normalised silhouettes compared by :func:`silhouette_iou`."""
PLACEHOLDER_SHAPE: Final[str] = "circle"
"""A vocabulary shape whose word :func:`concept_caption` swaps for the concept's."""
OBJECT_THRESHOLD: Final[float] = 80.0
"""RGB distance from the background colour above which a generated pixel counts as object."""


@dataclass(frozen=True)
class ConceptShape:
    """A shape outside the training vocabulary.

    Attributes:
        name: a held-out shape of ``world`` (``moon``; in v3 also ``cloud``, ``hexagon``, ``sparkle``, ``egg``) or
            ``novel-<i>``.
        vertices: the polygon (unit box, counter-clockwise) for novel shapes; ``None`` for a held-out shape.
        world: the Shapes world whose layout (object sizes) and geometry the shape is drawn with.
    """

    name: str
    vertices: tuple[tuple[float, float], ...] | None = None
    world: str = DEFAULT_WORLD

    @cached_property
    def inside(self) -> InsideFn:
        if self.vertices is None:
            return get_world(self.world).inside(self.name)
        polygon = np.asarray(self.vertices)
        return lambda u, v: inside_polygon(u, v, polygon)

    def render(self, color: str, position: str, background: str, size: int = 64, object_size: str = "large"):
        """The shape alone on a plain background: ``(image uint8 (size, size, 3), mask bool (size, size))``."""
        layout = ShapeObject(PLACEHOLDER_SHAPE, color, object_size, position)  # layout only: cell and size
        box = object_box(layout, world=get_world(self.world))
        cover = coverage(self.inside, box, size)
        image = composite(size, PALETTE[background], [(cover, PALETTE[color])])
        return image, cover >= GEOMETRY.mask_threshold


def concept_caption(color: str, position: str, background: str, word: str = "{}", world: str = DEFAULT_WORLD) -> str:
    """The canonical caption of one large ``color`` object at ``position`` on ``background``, the shape named
    ``word`` (``{}``: a caption template for learning a concept): the model's grammar with a new shape word."""
    obj = ShapeObject(PLACEHOLDER_SHAPE, color, "large", position)
    scene = Scene(objects=(obj,), background=background, world=world)
    return caption(scene).replace(PLACEHOLDER_SHAPE, word)


def novel_shape(index: int) -> ConceptShape:
    """Novel shape ``index``: a star polygon (3–8 tips, random depth and turn) or a smooth blob (a circle with
    random 2nd–4th radial harmonics), fitted to the unit box."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"a novel shape index is an integer ≥ 0, got {index!r}")
    rng = np.random.default_rng(np.random.SeedSequence(NOVEL_SEED, spawn_key=(index,)))
    if rng.random() < 0.5:
        points = int(rng.integers(3, 9))
        inner = rng.uniform(0.35, 0.75)
        angles = rng.uniform(0, 2 * math.pi / points) + np.arange(2 * points) * math.pi / points
        radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    else:
        angles = np.arange(BLOB_VERTICES) * 2 * math.pi / BLOB_VERTICES
        radii = np.ones(BLOB_VERTICES)
        for k in (2, 3, 4):
            radii += rng.uniform(-0.22, 0.22) * np.cos(k * angles + rng.uniform(0, 2 * math.pi))
    vertices = fit_to_box(np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1))
    return ConceptShape(f"novel-{index}", tuple((float(x), float(y)) for x, y in vertices))


def pretraining_shape(index: int) -> ConceptShape:
    """Pre-training shape ``index`` (< :data:`HELDOUT_OFFSET`)."""
    if not 0 <= index < HELDOUT_OFFSET:
        raise ValueError(f"pre-training shapes are 0 .. {HELDOUT_OFFSET - 1}, got {index}")
    return novel_shape(index)


def heldout_shape(index: int) -> ConceptShape:
    """Held-out evaluation shape ``index`` (never a pre-training shape)."""
    return novel_shape(HELDOUT_OFFSET + index)


def concept_shape(name: str, world: str = DEFAULT_WORLD) -> ConceptShape:
    """A held-out shape of ``world`` (``moon``, …) or ``novel-<i>`` (held-out novel shape ``i``), drawn in
    ``world``."""
    heldout = get_world(world).heldout_shapes
    if name in heldout:
        return ConceptShape(name, world=world)
    prefix, _, number = name.partition("-")
    if prefix == "novel" and number.isdigit():
        return ConceptShape(name, heldout_shape(int(number)).vertices, world)
    raise ValueError(f"unknown concept shape {name!r} in world {world}; use {', '.join(heldout)} or novel-<i>")


def object_mask(image: np.ndarray, background: str) -> np.ndarray:
    """The largest connected region of ``image`` (uint8 ``(H, W, 3)``) that differs from the ``background``
    colour by more than :data:`OBJECT_THRESHOLD`: the generated object's silhouette."""
    distance = np.linalg.norm(image.astype(np.float64) - np.asarray(PALETTE[background], dtype=np.float64), axis=-1)
    regions = label(distance > OBJECT_THRESHOLD, connectivity=2)
    if regions.max() == 0:
        return np.zeros(image.shape[:2], dtype=bool)
    counts = np.bincount(regions.ravel())
    counts[0] = 0
    return regions == counts.argmax()


def canonical(mask: np.ndarray, size: int = CANONICAL_SIZE) -> np.ndarray:
    """``mask`` cropped to the square around its bounding box (centred, side = the box's longer side) and resized
    to ``size × size``: the silhouette with position and scale normalised away. An empty mask stays empty."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return np.zeros((size, size), dtype=bool)
    side = max(rows.max() - rows.min(), cols.max() - cols.min()) + 1
    cy, cx = (rows.max() + rows.min()) / 2, (cols.max() + cols.min()) / 2
    pad = side
    padded = np.pad(mask, pad)
    top, left = int(round(cy - (side - 1) / 2)) + pad, int(round(cx - (side - 1) / 2)) + pad
    crop = padded[top : top + side, left : left + side].astype(np.float64)
    return resize(crop, (size, size), order=1, anti_aliasing=True) >= 0.5


def silhouette_iou(mask: np.ndarray, reference: np.ndarray) -> float:
    """IoU of two silhouettes after :func:`canonical` (1: the same shape at any position and scale)."""
    a, b = canonical(mask), canonical(reference)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0
