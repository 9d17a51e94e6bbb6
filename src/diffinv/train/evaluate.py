"""Evaluations of the mini model (:mod:`diffinv.train.mini`): batched generation scored by the Shapes probe during
UNet training (:func:`evaluate_generation`), and the ``eval`` stage, which scores an assembled pipeline folder as
users load it (:func:`evaluate_pipeline`)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

from diffinv.denoiser import Denoiser, Schedule
from diffinv.errors import DiffinvError
from diffinv.sampling import denoise
from diffinv.shapes.captions import caption
from diffinv.shapes.scene import Scene
from diffinv.shapes.splits import item_rng, sample_scene
from diffinv.shapes.world import DEFAULT_WORLD
from diffinv.train.assemble import weights_megabytes
from diffinv.train.data import to_uint8
from diffinv.train.parts import Parts, scheduler
from diffinv.train.text import tokenize
from diffinv.train.vae import evaluate_vae

if TYPE_CHECKING:
    from diffinv.train.mini import MiniConfig


def eval_scenes(kind: str, n: int, seed: int, world: str = DEFAULT_WORLD) -> list[Scene]:
    """``n`` held-out (test-split) scenes of ``world`` with ``kind`` = ``"single"`` (one object) or ``"double"``
    (two)."""
    n_objects = {"single": 1, "double": 2}[kind]
    return [
        sample_scene(item_rng("test", seed + n_objects, i), "test", n_objects=n_objects, world=world) for i in range(n)
    ]


def eval_captions(scenes: Sequence[Scene], seed: int) -> list[str]:
    """A seeded random caption variant per scene."""
    return [caption(s, item_rng("test", seed, i, "caption")) for i, s in enumerate(scenes)]


@torch.no_grad()
def generate_batch(
    parts: Parts,
    prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    num_inference_steps: int = 50,
    guidance_scale: float = 7.5,
    batch_size: int = 64,
) -> np.ndarray:
    """Batched version of :func:`diffinv.api.generate` (the same sampling loop, :func:`diffinv.sampling.denoise`,
    and per-image initial noise from ``torch.Generator().manual_seed(seed)``): uint8 ``(N, S, S, 3)``."""
    denoiser = Denoiser(parts.unet, Schedule.from_config(scheduler().config, num_inference_steps))
    channels, side = parts.unet.config.in_channels, parts.unet.config.sample_size
    images = []
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start : start + batch_size])
        noise = torch.cat(
            [
                torch.randn((1, channels, side, side), generator=torch.Generator().manual_seed(int(s)))
                for s in seeds[start : start + batch_size]
            ]
        )
        cond = parts.text_encoder(tokenize(parts.tokenizer, chunk))[0]
        uncond = parts.text_encoder(tokenize(parts.tokenizer, [""] * len(chunk)))[0]
        latents = denoise(denoiser, noise, cond, uncond, guidance_scale)
        pixels = parts.vae.decode(latents / parts.vae.config.scaling_factor).sample
        images.append(to_uint8(pixels))
    return np.concatenate(images)


def load_probe(path: str | Path | None, world: str = DEFAULT_WORLD) -> Any | None:
    """The Shapes probe (``path``, else the shipped one), or ``None`` when unavailable; DiffinvError when it reads
    another world's scenes than ``world``."""
    try:
        from diffinv.shapes.probe import DEFAULT_PATH, ShapesProbe
    except ImportError:
        return None
    folder = Path(path) if path is not None else DEFAULT_PATH
    if not (folder / "config.json").is_file():
        return None
    probe = ShapesProbe.from_pretrained(folder)
    if probe.config.world != world:
        raise DiffinvError(
            f"{folder}: this probe reads world {probe.config.world}'s scenes; scoring world {world} needs a probe "
            f"for it (--probe DIR, e.g. one trained by python -m diffinv.train.probe)"
        )
    return probe


def score_images(images: np.ndarray, truths: Sequence[Scene], probe: Any) -> dict[str, float]:
    """Mean probe agreement (background, shape, color, size, position, all) of generated images with the scenes
    their captions describe."""
    from diffinv.shapes.probe import mean_agreement, read_scenes

    preds = read_scenes(images, probe)
    return {k: round(v, 4) for k, v in mean_agreement(preds, list(truths)).items()}


def evaluate_generation(
    parts: Parts, probe: Any, n: int, seed: int, config: MiniConfig, *, batch_size: int = 64
) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """Probe scores of batched generations on ``n`` single- and ``n`` two-object held-out captions."""
    results, images = {}, {}
    for kind in ("single", "double"):
        scenes = eval_scenes(kind, n, seed, config.world)
        prompts = eval_captions(scenes, seed)
        seeds = [seed * 100_003 + i for i in range(n)]
        generated = generate_batch(
            parts,
            prompts,
            seeds,
            num_inference_steps=config.num_inference_steps,
            guidance_scale=config.guidance_scale,
            batch_size=batch_size,
        )
        images[kind] = generated
        results[kind] = score_images(generated, scenes, probe) if probe is not None else {}
    return results, images


def save_grid(images: np.ndarray, path: Path, columns: int = 8) -> None:
    """Save uint8 ``(N, S, S, 3)`` images as one PNG grid."""
    from PIL import Image

    n, s = images.shape[0], images.shape[1]
    rows = math.ceil(n / columns)
    grid = np.full((rows * s, columns * s, 3), 255, dtype=np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * s : (r + 1) * s, c * s : (c + 1) * s] = image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)


@dataclass(frozen=True)
class EvalSet:
    """One caption set of :func:`evaluate_pipeline`: held-out scenes, their captions, the generated images (uint8
    ``(N, S, S, 3)``), what the probe reads from them (``None`` without a probe) and the per-image seconds."""

    kind: str
    scenes: list[Scene]
    captions: list[str]
    images: np.ndarray
    reads: list[Scene] | None
    seconds: list[float]


@dataclass(frozen=True)
class PipelineEval:
    """Result of :func:`evaluate_pipeline`: ``scores`` (JSON-ready, written to ``eval.json``) and the sets."""

    scores: dict[str, Any]
    sets: tuple[EvalSet, ...]


def evaluate_pipeline(
    config: MiniConfig,
    folder: Path,
    n_prompts: int,
    probe_path: str | Path | None = None,
    seed: int = 1234,
    grid_dir: Path | None = None,
) -> PipelineEval:
    """Stage 5: score an assembled pipeline folder as users load it (fp32 from the fp16 files).

    Scores: load seconds, weight MB, VAE PSNR (held-out Shapes and photos), seconds per 50-step image
    (:func:`diffinv.api.generate`, batch 1) and probe agreement on ``n_prompts`` single- and two-object held-out
    captions generated one by one with :func:`diffinv.api.generate`.
    """
    from diffinv.api import generate
    from diffinv.pipelines import load_pipeline
    from diffinv.shapes.probe import mean_agreement, read_scenes

    started = time.perf_counter()
    pipe = load_pipeline(str(folder))
    load_seconds = time.perf_counter() - started
    result: dict[str, Any] = {"load_seconds": round(load_seconds, 3), "weights_mb": round(weights_megabytes(folder), 3)}
    result["vae"] = evaluate_vae(
        pipe.vae, config.vae.eval_images, config.vae.eval_seed, config.vae.model.image_size, config.world
    )
    probe = load_probe(probe_path, config.world)
    sets = []
    for kind in ("single", "double"):
        scenes = eval_scenes(kind, n_prompts, seed, config.world)
        prompts = eval_captions(scenes, seed)
        images, timings = [], []
        for i, prompt in enumerate(tqdm(prompts, desc=f"generate {kind}", mininterval=5)):
            t0 = time.perf_counter()
            image = generate(
                pipe,
                prompt,
                num_inference_steps=config.num_inference_steps,
                guidance_scale=config.guidance_scale,
                generator=torch.Generator().manual_seed(seed * 100_003 + i),
                output_type="np",
            )
            timings.append(time.perf_counter() - t0)
            images.append((np.asarray(image)[0] * 255).round().astype(np.uint8))
        stacked = np.stack(images)
        if grid_dir is not None:
            save_grid(stacked[:64], Path(grid_dir) / f"eval_{kind}.png")
        reads = read_scenes(stacked, probe) if probe is not None else None
        if reads is not None:
            result[kind] = {k: round(v, 4) for k, v in mean_agreement(reads, scenes).items()}
        sets.append(EvalSet(kind, scenes, prompts, stacked, reads, timings))
    result["seconds_per_image"] = round(float(np.median([t for s in sets for t in s.seconds])), 3)
    result["threads"] = torch.get_num_threads()
    result["n_prompts"] = n_prompts
    return PipelineEval(result, tuple(sets))
