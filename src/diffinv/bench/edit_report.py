"""The editing bench's summary (``diffinv edit-bench``): ``summary.md``, ``summary.json`` and the
success-vs-preservation plot.

``summary.json`` is a list of rows with keys ``inversion, editor, edit, success, preservation, kept_mentioned,
kept_unmentioned, bg_psnr, bg_ssim, target_psnr, target_ssim, seconds_per_edit, n`` (``kept_*``: what the edit left
alone, read unchanged, among what the source caption mentions and what it leaves out; ``None`` where a dataset's
captions mention everything); ``edit`` is an edit kind or ``objects`` (the mean over the
object edits: recolor, reshape, resize, background). Skipped records (an editor that does not apply) are left out.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from diffinv.bench.config import EDIT_KINDS, OBJECT_EDITS
from diffinv.bench.report import mean_or_reason, save_figure, write_tables

METRICS = (
    "success",
    "preservation",
    "kept_mentioned",
    "kept_unmentioned",
    "bg_psnr",
    "bg_ssim",
    "target_psnr",
    "target_ssim",
)
PIE_METRICS = ("bg_psnr", "bg_ssim", "bg_mse", "bg_lpips", "clip_similarity", "structure_distance")


def _average(records: list[dict[str, Any]], key: str) -> float | str | None:
    values = [r[key] for r in records if r.get(key) is not None]
    return mean_or_reason(values) if values else None


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (inversion, editor, edit kind) and per (inversion, editor) over the object edits."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if "skipped" in record:
            continue
        groups[(record["inversion"], record["editor"], record["edit"])].append(record)
        if record["edit"] in OBJECT_EDITS:
            groups[(record["inversion"], record["editor"], "objects")].append(record)
    order = {kind: i for i, kind in enumerate(("objects", *EDIT_KINDS, "pie"))}
    rows = []
    for (inversion, editor, edit), recs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], order[kv[0][2]])):
        row: dict[str, Any] = {"inversion": inversion, "editor": editor, "edit": edit, "n": len(recs)}
        row.update({key: _average(recs, key) for key in (PIE_METRICS if edit == "pie" else METRICS)})
        row["seconds_per_edit"] = _average(recs, "seconds")
        rows.append(row)
    return rows


def _cell(value: Any, percent: bool = False) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if percent:
        return f"{100 * value:.1f} %"
    return f"{value:.2f}" if math.isfinite(value) else str(value)


def markdown(rows: list[dict[str, Any]]) -> str:
    """The main table (object edits averaged), then success per edit kind; PIE-Bench rows get their own table."""
    pie = [r for r in rows if r["edit"] == "pie"]
    if pie:
        lines = [
            "| inversion | editor | bg PSNR ↑ | bg SSIM ↑ | bg MSE ↓ | bg LPIPS ↓ | CLIP sim. ↑ | structure ↓ "
            "| s/edit | n |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in pie:
            cells = " | ".join(_cell(r[k]) for k in PIE_METRICS)
            lines.append(f"| {r['inversion']} | {r['editor']} | {cells} | {_cell(r['seconds_per_edit'])} | {r['n']} |")
        return "\n".join(lines) + "\n"
    objects = [r for r in rows if r["edit"] == "objects"]
    split = any(r.get("kept_unmentioned") is not None for r in objects)  # partial captions: kept content split
    extra = " kept, mentioned ↑ | kept, unmentioned ↑ |" if split else ""
    lines = [
        f"| inversion | editor | success ↑ | preservation ↑ |{extra} bg PSNR ↑ | target PSNR ↑ | s/edit | n |",
        "|---|---|---:|---:|" + ("---:|---:|" if split else "") + "---:|---:|---:|---:|",
    ]
    for r in objects:
        kept = f" {_cell(r['kept_mentioned'], True)} | {_cell(r['kept_unmentioned'], True)} |" if split else ""
        lines.append(
            f"| {r['inversion']} | {r['editor']} | {_cell(r['success'], True)} | {_cell(r['preservation'], True)} |"
            f"{kept} {_cell(r['bg_psnr'])} | {_cell(r['target_psnr'])} | {_cell(r['seconds_per_edit'])} | {r['n']} |"
        )
    kinds = [k for k in EDIT_KINDS if any(r["edit"] == k for r in rows)]
    lines += ["", "Success by edit:", "", "| inversion | editor | " + " | ".join(kinds) + " |",
              "|---|---|" + "---:|" * len(kinds)]  # fmt: skip
    table: dict[tuple[str, str], dict[str, Any]] = defaultdict(dict)
    for r in rows:
        table[(r["inversion"], r["editor"])][r["edit"]] = r["success"]
    for (inversion, editor), cells in table.items():
        lines.append(f"| {inversion} | {editor} | " + " | ".join(_cell(cells.get(k), True) for k in kinds) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], out: Path) -> Path:
    """Success vs preservation of every (inversion, editor) over the object edits: colour = inversion, marker =
    editor, with two legends (text labels overlap where methods cluster)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    points = [r for r in rows if r["edit"] == "objects" and r["preservation"] is not None]
    inversions = list(dict.fromkeys(r["inversion"] for r in points))
    editors = list(dict.fromkeys(r["editor"] for r in points))
    colors = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(inversions)}
    markers = {name: "osD^v<>pPX*h"[i % 12] for i, name in enumerate(editors)}
    fig, ax = plt.subplots(figsize=(9, 5.5))
    fig.subplots_adjust(right=0.74)
    for r in points:
        ax.scatter(100 * r["preservation"], 100 * r["success"], s=45, color=colors[r["inversion"]],
                   marker=markers[r["editor"]], edgecolors="black", linewidths=0.4)  # fmt: skip
    by_inversion = [Line2D([], [], color=colors[n], marker="o", linestyle="", label=n) for n in inversions]
    by_editor = [Line2D([], [], color="gray", marker=markers[n], linestyle="", label=n) for n in editors]
    ax.add_artist(ax.legend(handles=by_inversion, title="inversion", loc="upper left", bbox_to_anchor=(1.01, 1.0)))
    ax.legend(handles=by_editor, title="editor", loc="lower left", bbox_to_anchor=(1.01, 0.0))
    ax.set_xlabel("preservation: other attributes right (%)")
    ax.set_ylabel("success: edited attribute right (%)")
    ax.set_title("Edits on held-out Shapes scenes (object edits)")
    ax.grid(alpha=0.3)
    return save_figure(fig, out / "success_vs_preservation.png")


def write_edit_summary(records: list[dict[str, Any]], out: Path) -> list[dict[str, Any]]:
    """Write ``summary.json``, ``summary.md`` and ``success_vs_preservation.png``; returns the rows."""
    rows = summarize(records)
    write_tables(rows, markdown(rows), out)
    plot(rows, out)
    return rows
