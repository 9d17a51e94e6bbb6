"""A figure to look at the built-in model's shapes: every training shape, small and large, from two models side by side.

Rows are shapes; for each model, a small and a large object in the center on a white background (and one
colour per row), generated with the same seeds (DDIM 50 steps, guidance 7.5) and enlarged with nearest-neighbour
so the pixels show. Issue 14 asks for squares with straight sides and four corners and triangles with three.

    python benchmarks/mini_shapes.py --models runs/mini-v1/.../mini mini --labels v1 v2 --out docs/img/mini_shapes.png
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import torch  # noqa: E402
from diffusers.utils import make_image_grid  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from diffinv import generate, load_pipeline  # noqa: E402
from diffinv.io import save_image  # noqa: E402
from diffinv.shapes import TRAIN_SHAPES  # noqa: E402

COLORS = ("red", "blue", "green", "purple", "orange", "black", "turquoise", "pink", "yellow")
ZOOM = 3
LABEL_HEIGHT = 14


def _label(image: Image.Image, text: str) -> Image.Image:
    tile = Image.new("RGB", (image.width, image.height + LABEL_HEIGHT), "white")
    tile.paste(image, (0, LABEL_HEIGHT))
    ImageDraw.Draw(tile).text((2, 1), text, fill="black")
    return tile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["mini"])
    parser.add_argument("--labels", nargs="+", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/mini_shapes.png"))
    args = parser.parse_args()
    labels = args.labels or args.models
    if len(labels) != len(args.models):
        parser.error("give one label per model")
    torch.set_num_threads(1)
    tiles = []
    pipes = [load_pipeline(m) for m in args.models]
    for row, shape in enumerate(TRAIN_SHAPES):
        color = COLORS[row % len(COLORS)]
        for label, pipe in zip(labels, pipes, strict=True):
            for size in ("small", "large"):
                prompt = f"a {size} {color} {shape} in the center on a white background"
                image = generate(pipe, prompt, generator=torch.Generator().manual_seed(args.seed + row))[0]
                image = image.resize((image.width * ZOOM, image.height * ZOOM), Image.Resampling.NEAREST)
                tiles.append(_label(image, f"{label}: {size} {color} {shape}"))
    grid = make_image_grid(tiles, rows=len(TRAIN_SHAPES), cols=2 * len(pipes))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, args.out)
    print(f"wrote {args.out} ({grid.width}x{grid.height})")


if __name__ == "__main__":
    main()
