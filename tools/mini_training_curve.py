"""Plot the mini model's generation accuracy against training minutes from the UNet stage's ``eval.jsonl`` logs.

Each log line is one periodic probe evaluation written by ``python -m diffinv.train.mini unet`` (held-out single-
and two-object captions, DDIM 50 steps, guidance 7.5). Several runs can be drawn side by side.

Usage::

    python tools/mini_training_curve.py "recipe=runs/mini/unet/eval.jsonl" "joint=runs/old/unet/eval.jsonl" \\
        --out docs/img/mini_training_curve.png [--offset-minutes 39.6,34.2]

``--offset-minutes`` shifts each run's x axis by the minutes spent before its UNet stage (VAE and text stages), so
the axis reads as total training time: one value for all runs, or one per run, comma-separated. Prints a
markdown table of every evaluation.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SERIES = (
    ("single", "shape", "shape"),
    ("single", "color", "colour"),
    ("single", "position", "position"),
    ("single", "background", "background"),
    ("double", "all", "two objects, all right"),
)


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="LABEL=PATH of an eval.jsonl")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--offset-minutes", default="0", help="minutes before the UNet stage: one, or one per run")
    args = parser.parse_args()
    runs = []
    for spec in args.runs:
        label, sep, path = spec.partition("=")
        if not sep:
            parser.error(f"{spec!r}: expected LABEL=PATH")
        if not Path(path).is_file():
            parser.error(f"{path}: no such file")
        runs.append((label, read_log(Path(path))))
    try:
        offsets = [float(v) for v in args.offset_minutes.split(",")]
    except ValueError:
        parser.error(f"--offset-minutes: expected numbers, got {args.offset_minutes!r}")
    if len(offsets) == 1:
        offsets *= len(runs)
    if len(offsets) != len(runs):
        parser.error(f"--offset-minutes: {len(offsets)} values for {len(runs)} runs")
    fig, axes = plt.subplots(1, len(runs), figsize=(5.5 * len(runs), 3.8), squeeze=False, sharey=True)
    print("| run | UNet step | total minutes | shape | colour | position | background | two objects all |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for ax, (label, records), offset in zip(axes[0], runs, offsets, strict=True):
        minutes = [offset + r["train_wall_seconds"] / 60 for r in records]
        for kind, key, name in SERIES:
            ax.plot(minutes, [r[kind][key] for r in records], marker="o", label=name)
        ax.set_title(label)
        ax.set_xlabel("training minutes (one CPU thread)")
        ax.grid(alpha=0.3)
        for r, m in zip(records, minutes, strict=True):
            s, d = r["single"], r["double"]
            print(f"| {label} | {r['step']} | {m:.0f} | {s['shape']:.2f} | {s['color']:.2f} | "
                  f"{s['position']:.2f} | {s['background']:.2f} | {d['all']:.2f} |")  # fmt: skip
    axes[0][0].set_ylabel("probe agreement (held-out captions)")
    axes[0][0].set_ylim(-0.02, 1.02)
    axes[0][-1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
