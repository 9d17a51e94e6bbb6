"""Inversion benchmark: every method on the same photo in one run.

Prints, per method: seconds, UNet evaluations, optimised parameters, latent MSE and PSNR of the reconstruction
against the input, and its time as a ratio of ``ddim``'s; writes a picture grid (input | reconstructions) and the
table, the input image and every method's inversion file (``METHOD.inv.safetensors``, for ``diffinv reconstruct``)
to ``--out``.

    python benchmarks/inversion_speed.py --out results/bench     # built-in mini model, a held-out Shapes scene
    python benchmarks/inversion_speed.py --image astronaut        # a real photo (a bundled one, captioned by us)
    python benchmarks/inversion_speed.py --model PATH --image photo.jpg --prompt "..."
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from diffinv import METHODS, invert, load_pipeline, reconstruct  # noqa: E402
from diffinv.bench.datasets import load_dataset  # noqa: E402
from diffinv.errors import DiffinvError  # noqa: E402
from diffinv.images import decode, encode, open_image, prepare_image  # noqa: E402
from diffinv.inversion import Inversion  # noqa: E402
from diffinv.io import save_image  # noqa: E402
from diffinv.metrics import latent_mse, psnr  # noqa: E402
from diffinv.pipelines import default_size  # noqa: E402

ZOOM = 4  # pixels per model pixel in the picture grid


def load_input(image: str, prompt: str | None) -> tuple[Image.Image, str]:
    """``shapes`` (a held-out Shapes scene and its caption), a bundled photo's name, or an image file + prompt."""
    if image == "shapes":
        sample = load_dataset("shapes:1")[0]
        return sample.load(), prompt or sample.caption
    photos = {s.id.removeprefix("photo-"): s for s in load_dataset("photos")}
    if image in photos:
        return photos[image].load(), prompt or photos[image].caption
    if prompt is None:
        raise DiffinvError(f"{image}: pass --prompt with your own image")
    return open_image(image), prompt


def run(args: argparse.Namespace) -> list[dict]:
    pipe = load_pipeline(args.model, device=args.device)
    photo, args.prompt = load_input(args.image, args.prompt)
    target = (prepare_image(photo, *default_size(pipe)) + 1) / 2
    ceiling = decode(pipe.vae, encode(pipe.vae, target * 2 - 1)).cpu()
    tiles = [("input", target), ("VAE round trip", ceiling)]
    inversions = {}
    rows = [
        {
            "method": "(VAE round trip)",
            "steps": 0,
            "seconds": 0.0,
            "unet_passes": 0,
            "optimized_params": 0,
            "latent_mse": 0.0,
            "psnr": psnr(ceiling, target),
        }
    ]
    for method in args.methods:
        started = time.perf_counter()
        inversion = invert(
            pipe,
            photo,
            args.prompt,
            method,
            num_inference_steps=args.steps,
        )
        seconds = time.perf_counter() - started
        settings = inversion.settings
        latents = reconstruct(pipe, inversion, output_type="latent")
        pixels = decode(pipe.vae, latents).cpu()
        rows.append(
            {
                "method": method,
                "steps": settings.num_inference_steps,
                "seconds": seconds,
                "unet_passes": inversion.stats.unet_passes,
                "optimized_params": inversion.stats.optimized_params,
                "latent_mse": latent_mse(latents, inversion.source_latents),
                "psnr": psnr(pixels, target),
            }
        )
        tiles.append((method, pixels))
        inversions[method] = inversion
    base = next((r["seconds"] for r in rows if r["method"] == "ddim"), rows[-1]["seconds"])
    for row in rows:
        row["time_vs_ddim"] = row["seconds"] / base if base else 0.0
    if args.out:
        write_outputs(Path(args.out), rows, tiles, inversions, args.prompt)
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| method | steps | seconds | × ddim time | UNet passes | optimised params | latent MSE | PSNR (dB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['steps']} | {r['seconds']:.2f} | {r['time_vs_ddim']:.2f} | "
            f"{r['unet_passes']} | {r['optimized_params']:,} | {r['latent_mse']:.2e} | {r['psnr']:.2f} |"
        )
    return "\n".join(lines)


def _to_pil(pixels: torch.Tensor) -> Image.Image:
    """``(1, 3, H, W)`` in [0, 1] → PIL."""
    return Image.fromarray((pixels[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def write_outputs(
    out: Path,
    rows: list[dict],
    tiles: list[tuple[str, torch.Tensor]],
    inversions: dict[str, Inversion],
    prompt: str,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for method, inversion in inversions.items():
        inversion.save(out / f"{method}.inv.safetensors")
    save_image(_to_pil(tiles[0][1]), out / "input.png")
    size = tiles[0][1].shape[-1] * ZOOM
    grid = Image.new("RGB", (size * len(tiles), size + 16), "white")
    draw = ImageDraw.Draw(grid)
    for k, (label, pixels) in enumerate(tiles):
        grid.paste(_to_pil(pixels).resize((size, size), Image.Resampling.NEAREST), (k * size, 16))
        draw.text((k * size + 3, 2), label, fill="black")
    save_image(grid, out / "reconstructions.png")
    (out / "table.md").write_text(f"Caption: {prompt!r}\n\n{table(rows)}\n")
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="default: the built-in mini model")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--image", default="shapes", help="'shapes' (a held-out scene, default), a bundled photo's name, or a file"
    )
    parser.add_argument("--prompt", default=None, help="caption (default: the dataset's; required for a file)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated (default: all)")
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default: each method's)")
    parser.add_argument(
        "--out",
        default=None,
        help="folder for reconstructions.png, table.md, results.json, input.png, METHOD.inv.safetensors",
    )
    args = parser.parse_args()
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    try:
        rows = run(args)
    except DiffinvError as exc:
        parser.exit(2, f"inversion_speed.py: error: {exc}\n")
    print(f"Caption: {args.prompt!r}\n\n{table(rows)}")
    if args.out:
        print(f"\nwrote {args.out}/: reconstructions.png, table.md, results.json, input.png, METHOD.inv.safetensors")


if __name__ == "__main__":
    main()
