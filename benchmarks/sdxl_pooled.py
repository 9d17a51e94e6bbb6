"""Prompt-token inversion on SDXL: the pooled text embedding optimised or kept, side by side.

    python benchmarks/sdxl_pooled.py --out runs/sdxl-pooled [--limit N]

SDXL conditions on a pooled text embedding beside the token embeddings (``diffinv.conditioning``). Prompt-token
inversion can optimise it with the semantic tokens (``pooled=true``, one more row per step) or keep the prompt's
(``pooled=false``, the ``paper`` preset); both leave the unconditional slot free. No SDXL weights exist offline, so
this runs ``diffinv bench`` on the photos with a tiny seeded SDXL pipeline (``diffinv.testing.tiny_sdxl_pipeline``,
saved as a diffusers folder): every variant of an image side by side in one process, at 10 and 25 steps, with
null-text and DDIM inversion for reference. Random weights make the numbers a statement about the optimisation
problem (how much the extra row lets the fit close the gap), not about image quality. Prints the bench's table;
the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

VARIANTS = (
    "ddim",
    "null-text",
    "prompt-tokens:pooled=false",
    "prompt-tokens",
    "prompt-tokens:steps=10,pooled=false",
    "prompt-tokens:steps=10",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="bench output folder (the model is saved inside)")
    parser.add_argument("--limit", type=int, default=None, help="a deterministic sample of N photos")
    args = parser.parse_args(argv)

    from diffinv.cli import main as cli
    from diffinv.testing import tiny_sdxl_pipeline

    model = args.out / "tiny-sdxl"
    if not (model / "model_index.json").is_file():
        tiny_sdxl_pipeline(seed=0).save_pretrained(model, safe_serialization=True)
    command = ["bench", "--dataset", "photos", "--model", str(model), "--methods", ",".join(VARIANTS)]
    command += ["--out", str(args.out)] + ([] if args.limit is None else ["--limit", str(args.limit)])
    status = cli(command)
    if status:
        return status
    print((args.out / "summary.md").read_text(encoding="utf-8"))
    rows = json.loads((args.out / "summary.json").read_text(encoding="utf-8"))
    print(json.dumps({row["method"]: {k: row[k] for k in ("latent_mse", "vae_ceiling_fraction")} for row in rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
