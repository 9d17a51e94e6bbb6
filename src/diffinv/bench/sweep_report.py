"""The SDEdit sweep's summary (``diffinv sdedit-sweep``): per strength over every scene, ``sweep.json``, ``sweep.md``
and ``sdedit_tradeoff.png`` (render distance against faithfulness, one point per t0); the measures are
:mod:`diffinv.bench.sdedit_sweep`'s.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffinv.bench.report import save_figure, write_tables
from diffinv.metrics import distribution_distances

SUMMARY_KEYS = ("faithfulness", "render_distance", "realism", "scene_right", "seconds")


def _set_distances(records: list[dict[str, Any]]) -> dict[str, float | None]:
    """FID and KID of one strength's results against the clean renders (``None`` with fewer than two records that
    keep features: records written before they were kept)."""
    kept = [r for r in records if "features" in r]
    if len(kept) < 2:
        return {"fid": None, "kid": None}
    found = distribution_distances(
        torch.tensor([r["features"] for r in kept]), torch.tensor([r["render_features"] for r in kept])
    )
    return {"fid": found["fid"], "kid": found["kid"]}


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per strength, averaged over scenes, with the set distances."""
    by_strength: dict[float, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_strength[float(r["strength"])].append(r)
    return [
        {
            "strength": t,
            "n": len(rs),
            **{k: float(np.mean([r[k] for r in rs])) for k in SUMMARY_KEYS},
            **_set_distances(rs),
        }
        for t, rs in sorted(by_strength.items())
    ]


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| t0 | L2 to guide ↓ | L2 to the clean scene ↓ | probe confidence ↑ | FID (probe) ↓ | KID ×1000 (probe) ↓ "
        "| scene read right ↑ | s/image | n |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        fid = "–" if r["fid"] is None else f"{r['fid']:.3f}"
        kid = "–" if r["kid"] is None else f"{1000 * r['kid']:.2f}"
        lines.append(
            f"| {r['strength']:.2f} | {r['faithfulness']:.4f} | {r['render_distance']:.4f} | {r['realism']:.4f} | "
            f"{fid} | {kid} | {100 * r['scene_right']:.1f} % | {r['seconds']:.2f} | {r['n']} |"
        )
    return "\n".join(lines) + "\n"


def write_sweep_summary(records: list[dict[str, Any]], out: Path) -> list[dict[str, Any]]:
    """``sweep.json``, ``sweep.md`` and ``sdedit_tradeoff.png``; returns the rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summarize(records)
    write_tables(rows, markdown(rows), out, name="sweep")
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot([r["faithfulness"] for r in rows], [r["render_distance"] for r in rows], "o-")
    for r in rows:
        ax.annotate(f"t0={r['strength']:g}", (r["faithfulness"], r["render_distance"]), fontsize=8)
    ax.set_xlabel("L2 distance to the stroke guide (lower: more faithful)")
    ax.set_ylabel("L2 distance to the exact clean scene (lower: more realistic)")
    ax.set_title("SDEdit: faithfulness vs realism over t0")
    ax.grid(alpha=0.3)
    save_figure(fig, out / "sdedit_tradeoff.png")
    plt.close(fig)
    return rows
