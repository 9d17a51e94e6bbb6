"""The reconstruction study of the reference paper (Table 1 and ablations) as one resumable command.

    python benchmarks/reconstruction.py --dataset shapes:100 --out runs/recon/shapes
    python benchmarks/reconstruction.py --dataset photos --out runs/recon/photos --ablation-images 0
    accelerate launch --num_processes 2 benchmarks/reconstruction.py --dataset shapes:100 --out runs/recon/shapes

Runs ``diffinv bench`` twice: the five methods plus the reference paper's prompt-token setting
(``prompt-tokens@paper``) on ``--dataset`` into ``OUT/main``, then the prompt-token ablations (token slice, steps,
inner iterations, learning rate) and null-text at our learning rate on the first ``--ablation-images`` Shapes
scenes into ``OUT/ablations``. Prints both ``summary.md`` tables. Re-running continues where it stopped; under
``accelerate launch`` the processes share the images. The model is the built-in one unless ``--model`` is given.
``null-text@paper`` is not a separate row: it is null-text's default.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from diffinv.cli import main as diffinv_main

MAIN = ("ddim", "null-text", "prompt-tokens", "prompt-tokens@paper", "negative-prompt", "direct")
ABLATIONS = (
    "prompt-tokens",
    "prompt-tokens:tokens=all",
    "prompt-tokens:steps=10",
    "prompt-tokens:steps=50",
    "prompt-tokens:inner=1",
    "prompt-tokens:inner=5",
    "prompt-tokens:lr=0.01",
    "prompt-tokens:lr=0.03",
    "prompt-tokens:lr=0.3",
    "prompt-tokens:lr_decay=0",
    "null-text",
    "null-text:lr=0.1",
)


def bench(dataset: str, methods: tuple[str, ...], out: Path, model: str | None) -> int:
    argv = ["bench", "--dataset", dataset, "--methods", ",".join(methods), "--out", str(out)]
    argv += ["--model", model] if model else []
    return diffinv_main(argv)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="shapes:100", help="dataset of the main table (diffinv bench --dataset)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default=None, help="default: the built-in model")
    parser.add_argument("--ablation-images", type=int, default=20, help="Shapes scenes of the ablations (0: none)")
    args = parser.parse_args()
    runs = [(args.dataset, MAIN, args.out / "main")]
    if args.ablation_images > 0:
        runs.append((f"shapes:{args.ablation_images}", ABLATIONS, args.out / "ablations"))
    for dataset, methods, out in runs:
        code = bench(dataset, methods, out, args.model)
        if code != 0:
            return code
    for _, _, out in runs:
        summary = out / "summary.md"
        if summary.is_file():  # written by the first process only
            print(f"\n## {out}\n\n{summary.read_text(encoding='utf-8')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
