"""The reconstruction bench's summary (``diffinv bench``), in the reference paper's Table 1 layout, and plots.

``summary.json`` is a list of rows with keys ``method, params, steps, psnr, ssim, lpips, clip_i,
seconds_per_image, vae_ceiling_fraction, negative_prompt_effect`` (plus ``n_images``, ``latent_mse`` and, on Shapes,
``probe_all``); a metric that could not be computed is the string saying why.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from diffinv.bench.report import mean_or_reason, save_figure, write_tables

COLUMNS = (
    ("method", "method"),
    ("params", "#params"),
    ("steps", "inversion steps"),
    ("psnr", "PSNR ↑"),
    ("ssim", "SSIM ↑"),
    ("lpips", "LPIPS ↓"),
    ("clip_i", "CLIP-I ↑"),
    ("seconds_per_image", "s/image"),
    ("vae_ceiling_fraction", "% of VAE ceiling"),
    ("negative_prompt_effect", "negative prompt Δ"),
    ("latent_mse", "latent MSE ↓"),
    ("probe_all", "probe: all attributes ↑"),
)


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per method label, in first-seen order; values averaged over images."""
    by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_method[record["method"]].append(record)
    rows = []
    for method, recs in by_method.items():
        psnr, ceiling = mean_or_reason([r["psnr"] for r in recs]), mean_or_reason([r["vae_psnr"] for r in recs])
        row = {
            "method": method,
            "n_images": len(recs),
            "params": round(mean_or_reason([r["params"] for r in recs])),
            "steps": recs[0]["steps"],
            "psnr": psnr,
            "ssim": mean_or_reason([r["ssim"] for r in recs]),
            "lpips": mean_or_reason([r["lpips"] for r in recs]),
            "clip_i": mean_or_reason([r["clip_i"] for r in recs]),
            "seconds_per_image": mean_or_reason([r["seconds"] for r in recs]),
            "vae_ceiling_fraction": psnr / ceiling if isinstance(psnr, float) and isinstance(ceiling, float) else "n/a",
            "negative_prompt_effect": mean_or_reason([r["negative_prompt_effect"] for r in recs]),
            "latent_mse": mean_or_reason([r["latent_mse"] for r in recs]),
        }
        if all("probe" in r for r in recs):
            row["probe_all"] = mean_or_reason([r["probe"]["all"] if isinstance(r["probe"], dict) else r["probe"]
                                               for r in recs])  # fmt: skip
        rows.append(row)
    return rows


def _cell(key: str, value: Any) -> str:
    if isinstance(value, str):
        return value.split(":")[0] if value.startswith(("unavailable", "refused")) else value
    if key == "params":
        return f"{value:,}"
    if key == "vae_ceiling_fraction":
        return f"{100 * value:.1f} %"
    if key in ("latent_mse", "negative_prompt_effect"):
        return f"{value:.2e}"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown(rows: list[dict[str, Any]]) -> str:
    keys = [k for k, _ in COLUMNS if any(k in r for r in rows)]
    titles = dict(COLUMNS)
    lines = ["| " + " | ".join(titles[k] for k in keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_cell(k, r.get(k, "")) for k in keys) + " |" for r in rows]
    notes = sorted({f"{k}: {r[k]}" for r in rows for k in ("lpips", "clip_i") if isinstance(r.get(k), str)})
    return "\n".join(lines + ([""] + [f"- {n}" for n in notes] if notes else [])) + "\n"


def plot(records: list[dict[str, Any]], rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """``quality_vs_time.png`` (mean PSNR vs seconds per image) and ``per_image.png`` (each image's PSNR per
    method against its VAE ceiling)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for row in rows:
        if isinstance(row["psnr"], float) and isinstance(row["seconds_per_image"], float):
            ax.scatter(row["seconds_per_image"], row["psnr"], s=40)
            ax.annotate(
                row["method"],
                (row["seconds_per_image"], row["psnr"]),
                fontsize=8,
                xytext=(4, 2),
                textcoords="offset points",
            )
    ax.set_xlabel("seconds per image")
    ax.set_ylabel("reconstruction PSNR (dB)")
    ax.set_title("Quality vs inversion time")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    written.append(save_figure(fig, out / "quality_vs_time.png"))
    fig, ax = plt.subplots(figsize=(6, 4))
    by_method: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in records:
        if isinstance(r["psnr"], float) and isinstance(r["vae_psnr"], float):
            by_method[r["method"]].append((r["vae_psnr"], r["psnr"]))
    for method, points in by_method.items():
        ax.scatter(*zip(*points, strict=True), s=12, alpha=0.7, label=method)
    limits = [p for pts in by_method.values() for xy in pts for p in xy]
    if limits:
        ax.plot([min(limits), max(limits)], [min(limits), max(limits)], "k--", lw=0.8, label="VAE ceiling")
    ax.set_xlabel("VAE round-trip PSNR of the image (dB)")
    ax.set_ylabel("reconstruction PSNR (dB)")
    ax.set_title("Per image")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    written.append(save_figure(fig, out / "per_image.png"))
    plt.close("all")
    return written


def write_reconstruction_summary(records: list[dict[str, Any]], out: Path) -> list[dict[str, Any]]:
    """Write ``summary.json``, ``summary.md`` and the plots; returns the rows."""
    rows = summarize(records)
    write_tables(rows, markdown(rows), out)
    plot(records, rows, out)
    return rows
