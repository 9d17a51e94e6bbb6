"""Quality-vs-time frontier of inversion methods from ``diffinv bench`` output folders.

    python benchmarks/frontier.py runs/pt-cheap/shapes runs/pt-cheap/photos --out docs/img/frontier.png

One panel per folder: each variant's mean share of the VAE ceiling (reconstruction PSNR / VAE round-trip PSNR) against
its seconds per image, relative to ``null-text`` of the same folder (the runs put every variant of an image side by
side, so the ratios hold on any machine), with the Pareto frontier (no other variant is both faster and better)
drawn through. Prints each panel's frontier as a table; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REFERENCE = "null-text"


def frontier(rows: list[dict]) -> list[dict]:
    """The rows no other row beats in both time and quality, fastest first."""
    best, kept = -1.0, []
    for row in sorted(rows, key=lambda r: (r["seconds_per_image"], -r["vae_ceiling_fraction"])):
        if row["vae_ceiling_fraction"] > best:
            kept.append(row)
            best = row["vae_ceiling_fraction"]
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="diffinv bench output folders (summary.json)")
    parser.add_argument("--out", type=Path, required=True, help="the plot (.png)")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from diffinv.bench.report import save_figure

    fig, axes = plt.subplots(1, len(args.folders), figsize=(6.5 * len(args.folders), 4.6), squeeze=False)
    result = {}
    for ax, folder in zip(axes[0], args.folders, strict=True):
        rows = [r for r in json.loads((folder / "summary.json").read_text()) if isinstance(r["psnr"], float)]
        reference = next((r for r in rows if r["method"] == REFERENCE), None)
        if reference is None:
            print(f"{folder}: no {REFERENCE} row to relate times to", file=sys.stderr)
            return 2
        for row in rows:
            row["time_ratio"] = row["seconds_per_image"] / reference["seconds_per_image"]
        line = frontier(rows)
        ax.plot([r["time_ratio"] for r in line], [100 * r["vae_ceiling_fraction"] for r in line], "-", color="gray",
                zorder=1, label="frontier")  # fmt: skip
        for row in rows:
            ax.scatter(row["time_ratio"], 100 * row["vae_ceiling_fraction"], s=30, zorder=2)
            ax.annotate(row["method"], (row["time_ratio"], 100 * row["vae_ceiling_fraction"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel(f"seconds per image / {REFERENCE}'s (same run)")
        ax.set_ylabel("% of the VAE ceiling (PSNR)")
        ax.set_title(f"{folder.name}: {rows[0]['n_images']} images")
        ax.grid(alpha=0.3, which="both")
        ax.margins(x=0.25)
        print(f"\n{folder}: frontier")
        print("| variant | × null-text time | % of VAE ceiling |\n|---|---:|---:|")
        for row in line:
            print(f"| {row['method']} | {row['time_ratio']:.3f} | {100 * row['vae_ceiling_fraction']:.1f} % |")
        result[str(folder)] = [
            {"method": r["method"], "time_ratio": round(r["time_ratio"], 4), "ceiling": r["vae_ceiling_fraction"]}
            for r in rows
        ]
    fig.tight_layout()
    save_figure(fig, args.out)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
