"""Evaluations of the mini model (:mod:`diffinv.train.mini`): batched generation scored by the Shapes probe during
UNet training (:func:`evaluate_generation`), and the ``eval`` stage, which scores an assembled pipeline folder as
users load it (:func:`evaluate_pipeline`)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from tqdm import tqdm

from diffinv.denoiser import Denoiser, Schedule
from diffinv.sampling import denoise
from diffinv.shapes.descriptions import Description, Mentions, describe, mention_agreement
from diffinv.shapes.scene import Scene
from diffinv.shapes.splits import item_rng, sample_scene
from diffinv.shapes.world import DEFAULT_WORLD, get_world
from diffinv.train.assemble import weights_megabytes
from diffinv.train.config import MiniConfig
from diffinv.train.data import to_uint8
from diffinv.train.parts import Parts, scheduler
from diffinv.train.text import tokenize
from diffinv.train.vae import evaluate_vae

EVAL_OBJECTS: Final = {"single": 1, "double": 2, "triple": 3, "partial": None}
"""Caption sets of the evaluations and their object counts (``None``: any); ``partial`` has partial captions."""


def eval_kinds(world: str) -> tuple[str, ...]:
    """The caption sets that evaluate a model of ``world``: one and two objects (v2's gates); three objects and
    partial captions too in a world of up to four objects with captions that leave things out (v3's)."""
    return ("single", "double") if get_world(world).max_objects <= 3 else tuple(EVAL_OBJECTS)


def eval_scenes(kind: str, n: int, seed: int, world: str = DEFAULT_WORLD) -> list[Scene]:
    """``n`` held-out (test-split) scenes of ``world`` of the caption set ``kind`` (:data:`EVAL_OBJECTS`)."""
    n_objects = EVAL_OBJECTS[kind]
    offset = 4 if n_objects is None else n_objects  # each set its own scenes
    return [
        sample_scene(item_rng("test", seed + offset, i), "test", n_objects=n_objects, world=world) for i in range(n)
    ]


def eval_descriptions(kind: str, scenes: Sequence[Scene], seed: int) -> list[Description]:
    """A seeded caption per scene: a random full variant, or a partial one for the ``partial`` set."""
    level = "partial" if kind == "partial" else "full"
    return [describe(s, level, item_rng("test", seed, i, "caption")) for i, s in enumerate(scenes)]


def set_scores(kind: str, reads: Sequence[Scene], scenes: Sequence[Scene], mentions: Sequence[Mentions]) -> dict:
    """Mean agreement of a caption set: with the captioned scene (:func:`~diffinv.shapes.probe.mean_agreement`),
    or, for partial captions, with what they mention (:func:`~diffinv.shapes.descriptions.mention_agreement`,
    averaged over the captions that mention each thing)."""
    from diffinv.shapes.probe import mean_agreement

    if kind != "partial":
        return {k: round(v, 4) for k, v in mean_agreement(list(reads), list(scenes)).items()}
    rows = [mention_agreement(r, s, m) for r, s, m in zip(reads, scenes, mentions, strict=True)]
    means = {k: [row[k] for row in rows if not math.isnan(row[k])] for k in rows[0]}
    return {k: round(float(np.mean(v)), 4) for k, v in means.items() if v}


@torch.no_grad()
def generate_batch(
    parts: Parts,
    prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    num_inference_steps: int,
    guidance_scale: float,
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
    """The Shapes probe (``path``, else the one shipped for ``world``), or ``None`` when unavailable (none in
    ``path``, none shipped for ``world`` yet); DiffinvError when the one in ``path`` reads another world's scenes."""
    try:
        from diffinv.shapes.probe import CONFIG_FILE, SHIPPED, probe_for
    except ImportError:
        return None
    folder = Path(path) if path is not None else SHIPPED.get(world)
    if folder is None or not (folder / CONFIG_FILE).is_file():
        return None
    return probe_for(world, path)


def evaluate_generation(
    parts: Parts, probe: Any, n: int, seed: int, config: MiniConfig, *, batch_size: int = 64
) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """Probe scores of batched generations on ``n`` held-out captions of every set of :func:`eval_kinds`."""
    from diffinv.shapes.probe import read_scenes

    results, images = {}, {}
    for kind in eval_kinds(config.world):
        scenes = eval_scenes(kind, n, seed, config.world)
        descriptions = eval_descriptions(kind, scenes, seed)
        prompts = [d.text for d in descriptions]
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
        if probe is not None:
            reads = read_scenes(generated, probe)
            results[kind] = set_scores(kind, reads, scenes, [d.mentions for d in descriptions])
        else:
            results[kind] = {}
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
    mentions: list[Mentions]


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

    Scores: load seconds, weight MB, VAE PSNR (held-out Shapes and photos), seconds per image of the config's
    ``num_inference_steps`` (:func:`diffinv.api.generate`, batch 1) and probe agreement (:func:`set_scores`) on
    ``n_prompts`` held-out captions of every set of :func:`eval_kinds`, generated one by one with
    :func:`diffinv.api.generate`.
    """
    from diffinv.api import generate
    from diffinv.pipelines import load_pipeline
    from diffinv.shapes.probe import probe_for, read_scenes

    started = time.perf_counter()
    pipe = load_pipeline(str(folder))
    load_seconds = time.perf_counter() - started
    result: dict[str, Any] = {"load_seconds": round(load_seconds, 3), "weights_mb": round(weights_megabytes(folder), 3)}
    result["vae"] = evaluate_vae(
        pipe.vae, config.vae.eval_images, config.vae.eval_seed, config.vae.model.image_size, config.world
    )
    # the gates need scores: without a folder, the probe shipped for the world or a one-line refusal saying why none
    probe = probe_for(config.world) if probe_path is None else load_probe(probe_path, config.world)
    sets = []
    for kind in eval_kinds(config.world):
        scenes = eval_scenes(kind, n_prompts, seed, config.world)
        descriptions = eval_descriptions(kind, scenes, seed)
        prompts = [d.text for d in descriptions]
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
        mentions = [d.mentions for d in descriptions]
        if reads is not None:
            result[kind] = set_scores(kind, reads, scenes, mentions)
        sets.append(EvalSet(kind, scenes, prompts, stacked, reads, timings, mentions))
    result["seconds_per_image"] = round(float(np.median([t for s in sets for t in s.seconds])), 3)
    result["threads"] = torch.get_num_threads()
    result["n_prompts"] = n_prompts
    return PipelineEval(result, tuple(sets))
