"""The reconstruction study of the reference paper (Table 1 and ablations) as one resumable command.

    python benchmarks/reconstruction.py --dataset shapes:100 --out runs/shapes [--model PATH]
    python benchmarks/reconstruction.py --dataset photos --out runs/photos

Runs ``diffinv bench`` with the five methods, the paper presets and the prompt-token ablations (token slice,
steps, inner iterations, learning rate), then prints ``summary.md``. Re-running continues where it stopped.
"""

from __future__ import annotations

import argparse
import sys

from diffinv.cli import main as diffinv_main

METHODS = ("ddim", "null-text", "prompt-tokens", "negative-prompt", "direct")
PRESETS = ("null-text@paper", "prompt-tokens@paper")
ABLATIONS = (
    "prompt-tokens:tokens=all",
    "prompt-tokens:steps=10",
    "prompt-tokens:steps=50",
    "prompt-tokens:inner=1",
    "prompt-tokens:inner=5",
    "prompt-tokens:lr=0.1",
    "prompt-tokens:lr=0.3",
    "null-text:lr=0.1",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="shapes:100")
    parser.add_argument("--out", required=True)
    parser.add_argument("--model", default=None)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--no-ablations", action="store_true", help="only the five methods and the paper presets")
    args = parser.parse_args()
    variants = METHODS + PRESETS + (() if args.no_ablations else ABLATIONS)
    argv = ["bench", "--dataset", args.dataset, "--methods", ",".join(variants), "--out", args.out]
    argv += ["--model", args.model] if args.model else []
    argv += ["--limit", str(args.limit)] if args.limit else []
    code = diffinv_main(argv)
    if code == 0:
        print(open(f"{args.out}/summary.md", encoding="utf-8").read())
    return code


if __name__ == "__main__":
    sys.exit(main())
