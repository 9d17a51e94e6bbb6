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
loop (resumable, shardable); :mod:`diffinv.bench.sweep_report` summarises the records (the plot is render distance
against faithfulness, one point per t0).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import StableDiffusionPipeline
from diffusers.utils import make_image_grid
from PIL import Image

from diffinv import api, shapes
from diffinv.bench.config import SDEditSweepConfig
from diffinv.bench.datasets import SHAPES_IMAGE_SIZE, Sample
from diffinv.bench.runner import Job, run_jobs
from diffinv.errors import DiffinvError
from diffinv.io import save_image
from diffinv.shapes import Scene, stroke_painting
from diffinv.shapes import probe as shapes_probe

STRIP_SCENES = 4


def parse_strengths(text: str) -> tuple[float, ...]:
    """``"0.3,1"`` → ``(0.3, 1.0)``, checked as :class:`~diffinv.bench.config.SDEditSweepConfig` checks them."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise DiffinvError(f"--strengths takes numbers in (0, 1] separated by commas, got {text!r}") from None
    return SDEditSweepConfig(strengths=values).strengths


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
    pipe: StableDiffusionPipeline, sample: Sample, config: SDEditSweepConfig, out: Path, keep: bool
) -> Callable[[set[str]], list[dict[str, Any]]]:
    seed = config.seed

    def run(done: set[str]) -> list[dict[str, Any]]:
        probe = shapes_probe.probe_for(sample.scene.world)
        guide = Image.fromarray(stroke_painting(sample.scene, SHAPES_IMAGE_SIZE, seed))
        guide_pixels = np.asarray(guide, dtype=np.float32) / 255
        clean = Image.fromarray(shapes.render(sample.scene, SHAPES_IMAGE_SIZE))
        records, outputs = [], []
        for strength in config.strengths:
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
    config: SDEditSweepConfig,
    out: Path,
    *,
    rank: int = 0,
    world_size: int = 1,
    progress: bool = True,
) -> int:
    """Run this process's share of the sweep not yet recorded in ``out``; returns scenes run."""
    if any(s.scene is None for s in samples):
        raise DiffinvError("the SDEdit sweep needs Shapes scenes (--dataset shapes:N)")
    jobs = [
        Job(tuple(f"{s.id}|{t}" for t in config.strengths), i, "sdedit", _job(pipe, s, config, out, i < STRIP_SCENES))
        for i, s in enumerate(samples)
    ]
    return run_jobs(jobs, out, config, pipe, rank=rank, world_size=world_size, progress=progress)
