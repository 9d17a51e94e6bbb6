"""The concept bench's summary (``diffinv concept-bench``): ``summary.json`` rows (method, shots, fidelity,
fidelity_gain, editability, colour, position and background right, seconds, file_kb, n) averaged over concepts,
``summary.md`` and ``fidelity.png``.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Final

import numpy as np

from diffinv.bench.report import save_figure, write_tables
from diffinv.personalization.registry import METHOD_CONFIGS

BASELINE: Final[str] = "class-word"
"""The method name of each concept's floor row: no learning, the init word in the prompts."""
SUMMARY_KEYS: Final[tuple[str, ...]] = (
    "fidelity",
    "editability",
    "color_right",
    "position_right",
    "background_right",
    "seconds",
    "file_kb",
)


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (method, shots), averaged over concepts; ``fidelity_gain`` is the mean of each concept's
    fidelity minus its class-word row's (over the concepts that have one)."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    floor = {r["concept"]: r["fidelity"] for r in records if r["method"] == BASELINE}
    for record in records:
        groups[(record["method"], int(record["shots"]))].append(record)
    order = {BASELINE: 0, **{m: i + 1 for i, m in enumerate(METHOD_CONFIGS)}}
    rows = []
    for (method, shots), recs in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1])):
        gains = [r["fidelity"] - floor[r["concept"]] for r in recs if r["concept"] in floor]
        rows.append({"method": method, "shots": shots, "n": len(recs),
                     **{k: float(np.mean([r[k] for r in recs])) for k in SUMMARY_KEYS},
                     "fidelity_gain": float(np.mean(gains)) if gains else None})  # fmt: skip
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| method | shots | fidelity (IoU) ↑ | vs class word ↑ | editability ↑ | colour | position | background "
        "| s/concept | file kB | n |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['shots']} | {r['fidelity']:.3f} | {_signed(r['fidelity_gain'])} | "
            f"{100 * r['editability']:.1f} % | "
            f"{100 * r['color_right']:.1f} % | {100 * r['position_right']:.1f} % | "
            f"{100 * r['background_right']:.1f} % | {r['seconds']:.1f} | {r['file_kb']:.1f} | {r['n']} |"
        )
    return "\n".join(lines) + "\n"


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.3f}"


def write_concept_summary(records: list[dict[str, Any]], out: Path) -> list[dict[str, Any]]:
    """``summary.json``, ``summary.md`` and ``fidelity.png`` (fidelity against shots and against seconds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summarize(records)
    write_tables(rows, markdown(rows), out)
    fig, (by_shots, by_time) = plt.subplots(1, 2, figsize=(11, 4.2))
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        if method == BASELINE:
            for ax in (by_shots, by_time):
                ax.axhline(mine[0]["fidelity"], color="gray", linestyle="--", label="class word (no learning)")
            continue
        by_shots.plot([r["shots"] for r in mine], [r["fidelity"] for r in mine], "o-", label=method)
        by_time.plot([r["seconds"] for r in mine], [r["fidelity"] for r in mine], "o", label=method)
    by_shots.set_xlabel("training shots")
    by_time.set_xlabel("seconds of learning per concept (this CPU)")
    by_time.set_xscale("log")
    for ax in (by_shots, by_time):
        ax.set_ylabel("fidelity: silhouette IoU")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Personalization on unseen shapes (built-in model)")
    fig.tight_layout()
    save_figure(fig, out / "fidelity.png")
    plt.close(fig)
    return rows
