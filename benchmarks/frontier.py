"""Quality-vs-time frontier of inversion methods from ``diffinv bench`` output folders.

    python benchmarks/frontier.py runs/table1/shapes+runs/pt-cheap/shapes runs/table1/photos+runs/pt-cheap/photos \
        --out docs/img/frontier.png

One panel per argument, each ``folder[+folder...]``: every variant's mean share of the VAE ceiling (reconstruction
PSNR / VAE round-trip PSNR) against its seconds per image relative to ``null-text`` *of its own folder* (a bench run
puts every variant of an image side by side, so those ratios hold across runs and machines; a variant in several
folders of a panel is taken from the first), with the Pareto frontier (no other variant both faster and better)
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
    parser.add_argument("panels", nargs="+", help="FOLDER[+FOLDER...]: diffinv bench output folders (summary.json)")
    parser.add_argument("--out", type=Path, required=True, help="the plot (.png)")
    parser.add_argument("--family", default=None, help="also draw the frontier of the variants starting with this")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from diffinv.bench.report import save_figure

    fig, axes = plt.subplots(len(args.panels), 1, figsize=(9.5, 4.4 * len(args.panels)), squeeze=False)
    result = {}
    for ax, panel in zip(axes[:, 0], args.panels, strict=True):
        rows: list[dict] = []
        for folder in (Path(part) for part in panel.split("+")):
            found = [r for r in json.loads((folder / "summary.json").read_text()) if isinstance(r["psnr"], float)]
            reference = next((r for r in found if r["method"] == REFERENCE), None)
            if reference is None:
                print(f"{folder}: no {REFERENCE} row to relate times to", file=sys.stderr)
                return 2
            seen = {r["method"] for r in rows}
            for row in found:
                if row["method"] not in seen:
                    rows.append({**row, "time_ratio": row["seconds_per_image"] / reference["seconds_per_image"]})
        line = frontier(rows)
        lines = [("all methods", line, "-")]
        if args.family:
            lines.append((args.family, frontier([r for r in rows if r["method"].startswith(args.family)]), "--"))
        for label, points, style in lines:
            ax.plot([r["time_ratio"] for r in points], [100 * r["vae_ceiling_fraction"] for r in points], style,
                    color="gray", zorder=1, label=f"frontier: {label}")  # fmt: skip
        values = sorted(100 * r["vae_ceiling_fraction"] for r in rows)
        floor = values[1] - 1.5 if len(values) > 2 else values[0] - 1.5  # the worst variant may sit off scale
        markers = "osD^vP*Xh<>p"
        for k, row in enumerate(rows):
            y = 100 * row["vae_ceiling_fraction"]
            label = row["method"] + ("" if y >= floor else f" ({y:.1f} %, off scale)")
            ax.scatter(row["time_ratio"], max(y, floor + 0.2), s=36, zorder=2, marker=markers[k % len(markers)],
                       label=label)  # fmt: skip
        ax.set_ylim(floor, 100.5)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        ax.set_xscale("log")
        ax.set_xlabel(f"seconds per image / {REFERENCE}'s (same run)")
        ax.set_ylabel("% of the VAE ceiling (PSNR)")
        ax.set_title(panel.replace("+", " + "), fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.margins(x=0.25)
        for label, points, _ in lines:
            print(f"\n{panel}: frontier of {label}")
            print("| variant | × null-text time | % of VAE ceiling |\n|---|---:|---:|")
            for row in points:
                print(f"| {row['method']} | {row['time_ratio']:.3f} | {100 * row['vae_ceiling_fraction']:.1f} % |")
        result[panel] = [
            {"method": r["method"], "time_ratio": round(r["time_ratio"], 4), "ceiling": r["vae_ceiling_fraction"]}
            for r in rows
        ]
    fig.tight_layout()
    save_figure(fig, args.out)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
