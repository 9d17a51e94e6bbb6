"""Edits of the bundled real photos, for the eye (no exact targets exist for photos).

Rows: photo | VAE round trip | then, for each inversion method, its reconstruction and its prompt-to-prompt edit.
The built-in model was trained on Shapes only, so it reconstructs photos through inversion but cannot draw what the
target words ask for; with a real Stable Diffusion checkpoint (``--model``) the edits become meaningful.

    python benchmarks/edit_photos.py --out results/edit_photos                 # built-in mini model
    python benchmarks/edit_photos.py --model PATH --out results/edit_photos_sd
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

from diffusers.utils import make_image_grid  # noqa: E402

from diffinv import edit, invert, load_pipeline  # noqa: E402
from diffinv.bench.datasets import load_dataset  # noqa: E402
from diffinv.images import encode, pixels_to_output, prepare_image, to_output  # noqa: E402
from diffinv.io import save_image  # noqa: E402
from diffinv.pipelines import default_size  # noqa: E402

# photo name → (word in its caption, replacement)
EDITS = {
    "astronaut": ("orange", "blue"),
    "chelsea": ("cat", "dog"),
    "coffee": ("red", "blue"),
    "rocket": ("blue", "red"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="default: the built-in mini model")
    parser.add_argument("--methods", default="null-text,prompt-tokens,negative-prompt,direct")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    pipe = load_pipeline(args.model)
    photos = {s.id.removeprefix("photo-"): s for s in load_dataset("photos")}
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    size = default_size(pipe)
    tiles, rows = [], []
    for name, (word, new) in EDITS.items():
        sample = photos[name]
        target = sample.caption.replace(word, new, 1)
        photo = sample.load()
        pixels = prepare_image(photo, *size)
        tiles += [pixels_to_output((pixels + 1) / 2, "pil")[0], to_output(pipe.vae, encode(pipe.vae, pixels), "pil")[0]]
        for method in methods:
            inversion = invert(pipe, photo, sample.caption, method)
            result = edit(
                pipe, inversion, target, mode="replace" if len(word.split()) == len(new.split()) else "refine"
            )
            tiles += [result.source[0], result.edit[0]]
        rows.append({"photo": name, "source": sample.caption, "target": target})
    columns = 2 + 2 * len(methods)
    grid = make_image_grid([t.resize((128, 128 * t.height // t.width)) for t in tiles], rows=len(EDITS), cols=columns)
    save_image(grid, args.out / "edit_photos.png")
    header = ["photo", "VAE"] + [f"{m} {kind}" for m in methods for kind in ("reconstruction", "edit")]
    (args.out / "edit_photos.json").write_text(json.dumps({"columns": header, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}/edit_photos.png (columns: {', '.join(header)})")


if __name__ == "__main__":
    main()
