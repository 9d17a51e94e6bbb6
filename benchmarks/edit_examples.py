"""A grid of edit-bench examples: per (scene, edit) one row — source render | exact target | the edit after each
inversion with one editor | SDEdit.

    python benchmarks/edit_examples.py runs/edits-v2 --scenes 3 --editor p2p --out docs/data/editing_v2/examples.png

Reads the example images ``diffinv edit-bench`` saved (``OUT/examples``, the first scenes) and rebuilds the source and
target renders with the bench's own task maker (same seed, same scenes), so the grid needs no model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

INVERSIONS = ("ddim", "null-text", "prompt-tokens", "negative-prompt", "direct")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bench", type=Path, help="an edit-bench output folder (with examples/)")
    parser.add_argument("--scenes", type=int, default=3, help="the first N scenes")
    parser.add_argument("--editor", default="p2p", help="the editor whose edits are shown (default: p2p)")
    parser.add_argument("--seed", type=int, default=0, help="the bench's --seed (default: 0)")
    parser.add_argument("--tile", type=int, default=96, help="pixels per image in the grid (default: 96)")
    parser.add_argument("--out", type=Path, required=True, help="the grid (.png)")
    args = parser.parse_args(argv)

    from diffusers.utils import make_image_grid
    from PIL import Image, ImageDraw

    from diffinv.bench.config import EditBenchConfig
    from diffinv.bench.datasets import shapes_samples
    from diffinv.bench.edit_tasks import make_task
    from diffinv.errors import DiffinvError

    config = EditBenchConfig()
    images: list[Image.Image] = []
    rows = 0
    for index, sample in enumerate(shapes_samples(args.scenes)):
        for n, kind in enumerate(config.edits):  # numbered as the bench numbers them
            if kind == "strokes":
                continue
            try:
                task = make_task(sample.scene, kind, (args.seed, index, n))
            except DiffinvError:  # an edit the bench left out for this scene
                continue
            edits = [args.bench / "examples" / f"{sample.id}_{kind}_{name}_{args.editor}.png" for name in INVERSIONS]
            edits.append(args.bench / "examples" / f"{sample.id}_{kind}_none_sdedit.png")
            images += [Image.fromarray(task.source_image), Image.fromarray(task.target_image)]
            images += [Image.open(path).convert("RGB") for path in edits]
            rows += 1
    size = (args.tile, args.tile)
    images = [image.resize(size, Image.Resampling.NEAREST) for image in images]
    grid = make_image_grid(images, rows=rows, cols=len(INVERSIONS) + 3)
    header = Image.new("RGB", (grid.width, 14), "white")
    draw = ImageDraw.Draw(header)
    for column, label in enumerate(("source", "target", *INVERSIONS, "SDEdit")):
        draw.text((column * size[0] + 2, 1), label, fill="black")
    figure = Image.new("RGB", (grid.width, grid.height + header.height), "white")
    figure.paste(header, (0, 0))
    figure.paste(grid, (0, header.height))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
