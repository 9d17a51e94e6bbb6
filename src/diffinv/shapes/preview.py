"""Write a grid of random scenes to a PNG and print their captions, for a person to look at.

Usage::

    python -m diffinv.shapes.preview OUT.png [--world v2] [--split train] [--n 16] [--size 64] [--seed 0]
        [--zoom 1] [--strokes] [--level full]
    python -m diffinv.shapes.preview OUT.png --catalogue [--world v3] [--size 64] [--zoom 1]

Tiles are laid out row-major, numbered like the printed captions (at ``--level`` of detail:
:mod:`diffinv.shapes.descriptions`). With ``--strokes`` every scene is followed by its stroke painting. With
``--catalogue`` the tiles are every shape of the world instead, large, in each of its fills (held-out shapes on a
gray background), and the printed lines name them.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from diffinv.shapes.descriptions import LEVELS, describe
from diffinv.shapes.render import render
from diffinv.shapes.scene import Scene, ShapeObject
from diffinv.shapes.splits import SPLITS, dataset, item_rng
from diffinv.shapes.strokes import stroke_painting
from diffinv.shapes.world import DEFAULT_WORLD, WORLDS, World, get_world

_GAP = 2
_GAP_VALUE = 255


def preview_grid(tiles: Sequence[np.ndarray], columns: int) -> np.ndarray:
    """Arrange equally sized HxWx3 tiles in a grid with white gaps."""
    h, w = tiles[0].shape[:2]
    rows = math.ceil(len(tiles) / columns)
    grid = np.full((rows * (h + _GAP) - _GAP, columns * (w + _GAP) - _GAP, 3), _GAP_VALUE, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        grid[r * (h + _GAP) : r * (h + _GAP) + h, c * (w + _GAP) : c * (w + _GAP) + w] = tile
    return grid


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m diffinv.shapes.preview``."""
    parser = argparse.ArgumentParser(prog="python -m diffinv.shapes.preview", description=__doc__)
    parser.add_argument("out", help="output PNG path")
    parser.add_argument("--world", default=DEFAULT_WORLD, choices=sorted(WORLDS), help="Shapes world")
    parser.add_argument("--split", default="train", choices=SPLITS)
    parser.add_argument("--level", default="full", choices=LEVELS, help="level of detail of the printed captions")
    parser.add_argument("--n", type=int, default=16, help="number of scenes")
    parser.add_argument("--size", type=int, default=64, help="resolution of every tile")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--zoom", type=int, default=1, help="nearest-neighbour upscaling of the PNG")
    parser.add_argument("--strokes", action="store_true", help="add the stroke painting of every scene")
    parser.add_argument("--catalogue", action="store_true", help="every shape of the world instead of scenes")
    args = parser.parse_args(argv)
    if args.catalogue:
        tiles, columns = catalogue(get_world(args.world), args.size)
        _save(preview_grid(tiles, columns), args.out, args.zoom)
        return

    scenes = dataset(args.split, args.n, args.seed, world=args.world)
    tiles = []
    for i, scene in enumerate(scenes):
        print(f"{i:2d}: {describe(scene, args.level, item_rng(args.split, args.seed, i, 'caption')).text}")
        tiles.append(render(scene, args.size))
        if args.strokes:
            tiles.append(stroke_painting(scene, args.size, item_rng(args.split, args.seed, i, "strokes")))
    per_scene = 2 if args.strokes else 1
    columns = per_scene * max(1, math.isqrt(args.n))
    _save(preview_grid(tiles, columns), args.out, args.zoom)


def _save(grid: np.ndarray, out: str, zoom: int) -> None:
    image = Image.fromarray(grid)
    if zoom > 1:
        image = image.resize((image.width * zoom, image.height * zoom), Image.Resampling.NEAREST)
    image.save(out)


def catalogue(world: World, size: int) -> tuple[list[np.ndarray], int]:
    """One tile per shape and fill of ``world`` (a large red object in the centre; white background for training
    shapes, gray for held-out ones), printing ``index: shape (held out)`` per shape; returns the tiles and the number
    of columns (one shape per column group of its fills)."""
    tiles = []
    for i, shape in enumerate(world.shapes):
        held_out = shape in world.heldout_shapes
        print(f"{i:2d}: {shape}{' (held out)' if held_out else ''}")
        for fill in world.fills:
            obj = ShapeObject(shape, "red", "large", "center", fill=fill)
            tiles.append(render(Scene("gray" if held_out else "white", (obj,), world.name), size))
    return tiles, len(world.fills) * max(1, math.isqrt(len(world.shapes)))


if __name__ == "__main__":
    main()
