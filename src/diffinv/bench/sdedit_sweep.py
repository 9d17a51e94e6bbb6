"""``diffinv sdedit-sweep``: SDEdit's t0 trade-off (Meng et al. 2022, Fig. 3) on held-out Shapes scenes.

Each scene's stroke painting is the guide; SDEdit runs at every strength with the scene's caption. Per result:
``faithfulness`` — the L2 distance to the guide (root mean square over pixels in [0, 1], lower is more faithful, the
paper's measure); ``render_distance`` — the L2 distance from the result to the exact clean render of the painted
scene (what a perfectly realistic and correct result would be; the strokes themselves are far from it: lower is
better); ``realism`` — the probe's confidence that the result is a clean scene
(:func:`diffinv.shapes.probe.scene_confidence`; it saturates, the probe reading stroke paintings confidently too);
``scene_right`` — the probe reads the painted scene exactly. Per strength, over all scenes: ``fid`` and ``kid`` —
the Fréchet and kernel distances between the results and the clean renders of their scenes in the probe's feature
space (:class:`~diffinv.shapes.probe.ProbeFeatures`, :func:`diffinv.metrics.distribution_distances`): a realism
measure that does not saturate (each record keeps both feature vectors). One job per scene through the shared job
loop (resumable, shardable); the plot is render distance against faithfulness, one point per t0.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import StableDiffusionPipeline
from diffusers.utils import make_image_grid
from PIL import Image

from diffinv import api, shapes
from diffinv.bench.datasets import SHAPES_IMAGE_SIZE, Sample
from diffinv.bench.report import save_figure
from diffinv.bench.runner import Job, run_jobs
from diffinv.errors import DiffinvError
from diffinv.io import atomic_write, save_image
from diffinv.metrics import distribution_distances
from diffinv.shapes import Scene, stroke_painting
from diffinv.shapes import probe as shapes_probe

STRIP_SCENES = 4
SUMMARY_KEYS = ("faithfulness", "render_distance", "realism", "scene_right", "seconds")


def parse_strengths(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise DiffinvError(f"--strengths takes numbers in (0, 1] separated by commas, got {text!r}") from None
    if not values or any(not (0.0 < v <= 1.0) for v in values):
        raise DiffinvError(f"--strengths takes numbers in (0, 1] separated by commas, got {text!r}")
    return values


def _rms(a: np.ndarray, b: np.ndarray) -> float:
    """Root-mean-square difference of two images in [0, 1]."""
    return float(np.sqrt(((a - b) ** 2).mean()))


def render_distance(image: Image.Image, scene: Scene) -> float:
    """The L2 distance (root mean square, pixels in [0, 1]) from ``image`` to the exact clean render of ``scene``
    at the image's size: 0 for that render, large for a stroke painting of it."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    return _rms(pixels, shapes.render(scene, image.width).astype(np.float32) / 255)


def _features(images: list[Image.Image], probe: shapes_probe.ShapesProbe) -> list[list[float]]:
    """The probe's image-level features of each image (rounded: they are stored in every record)."""
    features = shapes_probe.ProbeFeatures(probe)(shapes_probe.to_probe_input(images))
    return [[round(float(v), 5) for v in row] for row in features]


def _job(
    pipe: StableDiffusionPipeline, sample: Sample, strengths: tuple[float, ...], seed: int, out: Path, keep: bool
) -> Callable[[set[str]], list[dict[str, Any]]]:
    def run(done: set[str]) -> list[dict[str, Any]]:
        probe = shapes_probe.probe_for(sample.scene.world)
        guide = Image.fromarray(stroke_painting(sample.scene, SHAPES_IMAGE_SIZE, seed))
        guide_pixels = np.asarray(guide, dtype=np.float32) / 255
        clean = Image.fromarray(shapes.render(sample.scene, SHAPES_IMAGE_SIZE))
        records, outputs = [], []
        for strength in strengths:
            started = time.perf_counter()
            image = api.sdedit(pipe, guide, sample.caption, strength=strength,
                               generator=torch.Generator().manual_seed(seed))[0]  # fmt: skip
            seconds = time.perf_counter() - started
            pixels = np.asarray(image.resize(guide.size), dtype=np.float32) / 255
            read = shapes_probe.read_scenes([image], probe)[0]
            result_features, render_features = _features([image.resize(guide.size), clean], probe)
            records.append({
                "key": f"{sample.id}|{strength}",
                "sample": sample.id,
                "strength": strength,
                "faithfulness": _rms(pixels, guide_pixels),
                "render_distance": render_distance(image.resize(guide.size), sample.scene),
                "realism": float(shapes_probe.scene_confidence([image], probe)[0]),
                "scene_right": shapes_probe.scene_agreement(read, sample.scene)["all"],
                "seconds": seconds,
                "features": result_features,
                "render_features": render_features,
            })  # fmt: skip
            outputs.append(image)
        if keep:
            tiles = [guide, *outputs, sample.load()]
            save_image(make_image_grid(tiles, rows=1, cols=len(tiles)), out / "strips" / f"{sample.id}.png")
        return records

    return run


def run_sweep(
    pipe: StableDiffusionPipeline,
    samples: list[Sample],
    strengths: tuple[float, ...],
    out: Path,
    *,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    num_threads: int = 1,
    progress: bool = True,
) -> int:
    """Run this process's share of the sweep not yet recorded in ``out``; returns scenes run."""
    if any(s.scene is None for s in samples):
        raise DiffinvError("the SDEdit sweep needs Shapes scenes (--dataset shapes:N)")
    jobs = [
        Job(tuple(f"{s.id}|{t}" for t in strengths), i, "sdedit", _job(pipe, s, strengths, seed, out, i < STRIP_SCENES))
        for i, s in enumerate(samples)
    ]
    return run_jobs(jobs, out, rank=rank, world_size=world_size, num_threads=num_threads, progress=progress)


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


def summarize_sweep(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
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


def write_sweep_summary(records: list[dict[str, Any]], out: Path) -> list[dict[str, Any]]:
    """``sweep.json``, ``sweep.md`` and ``sdedit_tradeoff.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summarize_sweep(records)
    atomic_write(out / "sweep.json", lambda tmp: tmp.write_text(json.dumps(rows, indent=2) + "\n"))
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
    atomic_write(out / "sweep.md", lambda tmp: tmp.write_text("\n".join(lines) + "\n"))
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
